// Long-lived JavaScript syntax checker for codetune (see javascript.py for the protocol and wrapping rule).
//
// Reads one JSON request per line on stdin:  {"code": "...", "unit": "auto|whole|body|member"}
// Writes one JSON reply per line on stdout:  {"status": "valid|invalid|error", "line": n|null,
//                                              "form": "script|module|body|member", "message": "..."}
// V8 compiles the source (full early errors) and never runs it: vm.Script and vm.SourceTextModule only
// compile, vm.compileFunction only builds the function object.
'use strict';
const vm = require('vm');
const readline = require('readline');

const FILE = 'snippet.js';
// Same-line prefix, so line numbers of the class-member reading equal the snippet's own.
const MEMBER_PREFIX = 'class Main { ';
const MAX_MESSAGE = 600;

// A SourceTextModule's SyntaxError carries its location only in node's private "arrow message" (what
// `node --check file.mjs` prints); reading it needs --expose-internals. Without it, module errors have
// no line, and nothing else changes.
let arrowSymbol = null;
try {
  // eslint-disable-next-line node/no-missing-require
  const { internalBinding } = require('internal/test/binding');
  arrowSymbol = internalBinding('util').privateSymbols.arrow_message_private_symbol || null;
} catch (err) {
  arrowSymbol = null;
}

function lineOf(err, filename) {
  // V8 puts "file:LINE" at the head of a SyntaxError's stack (or arrow message), before the source excerpt.
  const re = new RegExp(filename.replace('.', '\\.') + ':(\\d+)');
  let m = String(err && err.stack).match(re);
  if (!m && arrowSymbol && err) m = String(err[arrowSymbol] || '').match(re);
  return m ? Number(m[1]) : null;
}

function tryCompile(form, code) {
  try {
    if (form === 'script') {
      new vm.Script(code, { filename: FILE });
    } else if (form === 'module') {
      new vm.SourceTextModule(code, { identifier: FILE });
    } else if (form === 'body') {
      vm.compileFunction(code, [], { filename: FILE });
    } else {
      new vm.Script(MEMBER_PREFIX + code + '\n}', { filename: FILE });
    }
    return { ok: true, form };
  } catch (err) {
    if (!(err instanceof SyntaxError) && !(err && err.name === 'SyntaxError')) throw err;
    let message = String(err.message);
    if (message.length > MAX_MESSAGE) message = message.slice(0, MAX_MESSAGE);
    return { ok: false, form, line: lineOf(err, FILE), message };
  }
}

const ORDER = {
  auto: ['script', 'module', 'body', 'member'],
  whole: ['script', 'module'],
  body: ['body'],
  member: ['member'],
};

function check(code, unit) {
  const forms = ORDER[unit] || ORDER.auto;
  let best = null;
  for (const form of forms) {
    const r = tryCompile(form, code);
    if (r.ok) return { status: 'valid', line: null, form, message: '' };
    // Neither reading parses: report the one that got furthest; ties keep the earlier form in the order.
    if (best === null || (r.line || 0) > (best.line || 0)) best = r;
  }
  return { status: 'invalid', line: best.line, form: best.form, message: best.message };
}

if (typeof vm.SourceTextModule !== 'function') {
  process.stdout.write(JSON.stringify({ status: 'error', line: null, form: 'script',
    message: 'node lacks vm.SourceTextModule; it must run with --experimental-vm-modules' }) + '\n');
  process.exit(0);
}
process.stdout.write(JSON.stringify({ status: 'ready', line: null, form: 'script', message: process.version }) + '\n');

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on('line', (line) => {
  let reply;
  try {
    const req = JSON.parse(line);
    reply = check(String(req.code), req.unit || 'auto');
  } catch (err) {
    reply = { status: 'error', line: null, form: 'script', message: 'checker failed: ' + String(err) };
  }
  process.stdout.write(JSON.stringify(reply) + '\n');
});
