// s3rver (npm, pinned by tests/npm/package-lock.json) on loopback for the s3 plugin's tests,
// with what a test needs and s3rver cannot be told on its command line. Not a product part.
//
//   node s3rver.js NPM_DIR DATA_DIR PORT_FILE [--bucket NAME]... [--fault-file PATH] [--rate BYTES]
//
//   --bucket NAME      created at start
//   --fault-file PATH  while PATH exists, GETs of objects (not listings) answer its first line
//                      "STATUS [RETRY_AFTER]" with an S3 XML error body
//   --rate BYTES       object bodies are sent at about BYTES per second
//
// Run it with `node --openssl-legacy-provider`: s3rver's continuation tokens use DES, which
// OpenSSL 3 keeps in its legacy provider (without it every truncated listing answers 500).
//
// Host names "<bucket>.s3.localhost" are virtual-hosted requests (libcurl resolves *.localhost
// to loopback itself). s3rver checks only that a V4 request's access key exists (its own
// S3RVER), not the signature; this wrapper checks the signature of every signed request for
// the secret S3RVER, over the request as it arrived (method, path, query, the signed headers,
// x-amz-content-sha256), and answers 403 SignatureDoesNotMatch when it differs. It is a second
// implementation of the rules, written from AWS's documentation; the byte-for-byte comparison
// with botocore (tests/unit/sigv4_test.cc) is the independent one. awscli's own requests pass it.
// Each request is logged to stderr as "s3rver: METHOD HOST PATH range=RANGE status=STATUS [sig=ok]".
// The port is written to PORT_FILE once it listens.
'use strict';
const path = require('path');
const fs = require('fs');
const { Transform } = require('stream');

const [npmDir, dataDir, portFile, ...rest] = process.argv.slice(2);
const S3rver = require(path.resolve(npmDir, 'node_modules', 's3rver'));
const buckets = [];
let faultFile = '';
let rate = 0;
for (let i = 0; i < rest.length; i += 2) {
  if (rest[i] === '--bucket') buckets.push({ name: rest[i + 1] });
  else if (rest[i] === '--fault-file') faultFile = rest[i + 1];
  else if (rest[i] === '--rate') rate = Number(rest[i + 1]);
  else throw new Error('unknown option ' + rest[i]);
}

function throttle(bytesPerSecond) {
  const step = Math.max(1, Math.floor(bytesPerSecond / 20));
  return new Transform({
    transform(chunk, _enc, done) {
      let at = 0;
      const push = () => {
        if (at >= chunk.length) return done();
        this.push(chunk.subarray(at, at + step));
        at += step;
        setTimeout(push, 50);
      };
      push();
    },
  });
}

const crypto = require('crypto');
const SECRET = 'S3RVER';

// AWS's URI encoding: every byte but A-Za-z0-9-._~ (and '/' in paths) as %XX.
function awsEncode(str, keepSlash) {
  let out = '';
  for (const b of Buffer.from(str, 'utf8')) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-._~]/.test(c) || (keepSlash && c === '/')) out += c;
    else out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}
function decode(s) {
  try { return decodeURIComponent(s.replace(/\+/g, '%2B')); } catch (e) { return s; }
}
const hmac = (key, data) => crypto.createHmac('sha256', key).update(data, 'utf8').digest();

// Whether the Authorization header's V4 signature is right; null when the request is not V4-signed.
function signatureOk(req) {
  const auth = req.headers['authorization'] || '';
  const m = /^AWS4-HMAC-SHA256 Credential=([^,]+), ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m) return null;
  const [keyId, date, region, service, term] = m[1].split('/');
  if (keyId !== 'S3RVER' || term !== 'aws4_request') return false;
  const raw = req.url;
  const q = raw.indexOf('?');
  const path = awsEncode(decode(q < 0 ? raw : raw.slice(0, q)), true) || '/';
  const query = (q < 0 ? '' : raw.slice(q + 1)).split('&').filter(x => x.length).map(pair => {
    const eq = pair.indexOf('=');
    const k = decode(eq < 0 ? pair : pair.slice(0, eq)), v = eq < 0 ? '' : decode(pair.slice(eq + 1));
    return [awsEncode(k, false), awsEncode(v, false)];
  }).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([k, v]) => k + '=' + v).join('&');
  const signed = m[2].split(';');
  const headers = signed.map(h => h + ':' + String(req.headers[h] === undefined ? '' : req.headers[h]).trim().replace(/\s+/g, ' ')).join('\n');
  const payload = req.headers['x-amz-content-sha256'] || '';
  const canonical = [req.method, path, query, headers + '\n', m[2], payload].join('\n');
  const amzDate = req.headers['x-amz-date'] || '';
  const toSign = ['AWS4-HMAC-SHA256', amzDate, [date, region, service, term].join('/'),
    crypto.createHash('sha256').update(canonical, 'utf8').digest('hex')].join('\n');
  const key = hmac(hmac(hmac(hmac('AWS4' + SECRET, date), region), service), term);
  const ok = crypto.createHmac('sha256', key).update(toSign, 'utf8').digest('hex') === m[3];
  if (!ok) process.stderr.write('s3rver: signature mismatch; canonical request:\n' + canonical + '\n');
  return ok;
}

const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  directory: dataDir,
  silent: true,
  serviceEndpoint: 'localhost',
  configureBuckets: buckets,
});
// In front of s3rver's own middleware.
server.middleware.unshift(async (ctx, next) => {
  const isObjectGet = ctx.method === 'GET' && !('list-type' in ctx.query) && /^\/[^/]+\/.+/.test(ctx.path) ||
    ctx.method === 'GET' && /\.s3\.localhost$/.test(ctx.hostname) && ctx.path.length > 1 && !('list-type' in ctx.query);
  const sig = signatureOk(ctx.req);
  if (sig === false) {
    ctx.status = 403;
    ctx.type = 'application/xml';
    ctx.body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SignatureDoesNotMatch</Code><Message>The request ' +
      'signature we calculated does not match the signature you provided. Check your key and signing method.</Message></Error>';
    process.stderr.write(`s3rver: ${ctx.method} ${ctx.hostname} ${ctx.originalUrl} range=${ctx.get('range') || '-'} status=403 sig=bad\n`);
    return;
  }
  let fault = null;
  if (faultFile && isObjectGet) {
    try {
      fault = fs.readFileSync(faultFile, 'utf8').split('\n')[0].trim().split(/\s+/);
    } catch (e) {
      fault = null;
    }
  }
  if (fault) {
    ctx.status = Number(fault[0]);
    if (fault[1]) ctx.set('Retry-After', fault[1]);
    ctx.type = 'application/xml';
    ctx.body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>Injected' + fault[0] +
      '</Code><Message>injected by the test</Message></Error>';
  } else {
    await next();
    if (rate > 0 && isObjectGet && ctx.body && typeof ctx.body.pipe === 'function') ctx.body = ctx.body.pipe(throttle(rate));
  }
  process.stderr.write(`s3rver: ${ctx.method} ${ctx.hostname} ${ctx.originalUrl} range=${ctx.get('range') || '-'} status=${ctx.status}${sig ? ' sig=ok' : ''}\n`);
});
server.run().then(({ port }) => {
  fs.writeFileSync(portFile + '.tmp', String(port));
  fs.renameSync(portFile + '.tmp', portFile);
});
