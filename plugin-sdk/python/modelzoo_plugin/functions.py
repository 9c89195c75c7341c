"""The base of FunctionRegistry and FunctionExtension: methods given as plain functions."""


class FunctionTable:
    """Holds one function per method name, given to on() as a decorator or as keyword
    arguments to the constructor. A subclass names its METHODS and KIND and routes each
    method through _call(), which falls back to the base class's behaviour."""

    METHODS = ()
    KIND = "plugin"

    def __init__(self, **functions):
        self._functions = {}
        for method, fn in functions.items():
            self.on(method)(fn)

    def on(self, method):
        if method not in self.METHODS:
            raise ValueError("unknown %s method %r (one of %s)" % (self.KIND, method, ", ".join(self.METHODS)))

        def register(fn):
            self._functions[method] = fn
            return fn

        return register

    def _call(self, method, fallback, *args):
        fn = self._functions.get(method)
        return fn(*args) if fn is not None else fallback(*args)
