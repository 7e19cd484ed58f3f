// Tests-as-data runner for JavaScript (see codetune/evaluation/datamode.py): the first lines of
// program.js, before the prompt and the completion; the harness then appends one
// `__codetune_data.emit(() => CALL);` per test call. Each result is written as one line {"v": VALUE}
// to ct_outputs.jsonl, VALUE being JSON: null, booleans, finite numbers (-0 as 0), strings, arrays,
// plain objects as {"o": [[key, value], ...]} in their key order; undefined as {"u": 0}, NaN and the
// infinities as {"f": "NaN"}; anything else (functions, class instances, Map, Set, bigint, symbols,
// boxed primitives) as {"r": "its kind"}, which the harness never counts as equal to anything.
// What it uses is captured here, before any completion code runs.
const __codetune_data = (function () {
  const fs = require('fs');
  const fd = fs.openSync('ct_outputs.jsonl', 'w');
  const writeSync = fs.writeSync;
  const stringify = JSON.stringify;
  const isArray = Array.isArray;
  const getPrototypeOf = Object.getPrototypeOf;
  const keys = Object.keys;
  const objectPrototype = Object.prototype;
  const isFinite = Number.isFinite;
  const MAX_DEPTH = 100;

  function kind(x) {
    try {
      const c = x.constructor;
      return typeof c === 'function' && typeof c.name === 'string' && c.name ? c.name : typeof x;
    } catch (e) {
      return typeof x;
    }
  }

  function enc(x, depth) {
    if (depth > MAX_DEPTH) return { r: 'nested too deeply' };
    if (x === null) return null;
    const t = typeof x;
    if (t === 'undefined') return { u: 0 };
    if (t === 'boolean' || t === 'string') return x;
    if (t === 'number') {
      if (!isFinite(x)) return { f: String(x) };
      return x === 0 ? 0 : x;
    }
    if (t !== 'object') return { r: t };
    if (isArray(x)) {
      const out = [];
      for (let i = 0; i < x.length; i++) out.push(enc(x[i], depth + 1));
      return out;
    }
    const proto = getPrototypeOf(x);
    if (proto !== objectPrototype && proto !== null) return { r: kind(x) };
    return { o: keys(x).map((k) => [k, enc(x[k], depth + 1)]) };
  }

  return {
    emit(thunk) {
      const line = stringify({ v: enc(thunk(), 0) });
      writeSync(fd, line + '\n');
    },
  };
})();
