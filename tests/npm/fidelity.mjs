// The official JavaScript client of the Hugging Face Hub (@huggingface/hub, pinned in
// package-lock.json) against tests/hfhub/hub_server.py: it lists the models (following the
// Link-header cursor), lists a repo's files and downloads a git file and an LFS file (through
// the 302 to the CDN port). Run by tests/hfhub/js_client_test.sh; prints "ok" and exits 0, or
// names what differed and exits 1.
import { listModels, listFiles, downloadFile, modelInfo } from "@huggingface/hub";
import { readFileSync } from "node:fs";

const [hubUrl, root] = process.argv.slice(2);
const fail = (m) => { console.error("fidelity: " + m); process.exit(1); };

const names = [];
for await (const m of listModels({ hubUrl, limit: 10 })) names.push(m.name);
if (JSON.stringify(names) !== JSON.stringify(["acme/a1", "acme/a2", "acme/tiny"]))
  fail("listModels gave " + JSON.stringify(names));

const info = await modelInfo({ hubUrl, name: "acme/tiny" });
if (info.name !== "acme/tiny") fail("modelInfo gave " + JSON.stringify(info));

const files = [];
for await (const f of listFiles({ hubUrl, repo: "acme/tiny", recursive: true })) files.push(f);
const byPath = Object.fromEntries(files.map((f) => [f.path, f]));
if (!byPath["config.json"] || !byPath["model.safetensors"] || !byPath["model.safetensors"].lfs)
  fail("listFiles gave " + JSON.stringify(files));

for (const p of ["config.json", "model.safetensors"]) {
  const blob = await downloadFile({ hubUrl, repo: "acme/tiny", path: p, xet: false });
  if (!blob) fail("downloadFile found no " + p);
  const got = Buffer.from(await blob.arrayBuffer());
  if (!got.equals(readFileSync(root + "/acme/tiny/" + p))) fail("downloadFile of " + p + " gave other bytes");
}
console.log("ok");
