// test_tokenizer.js: the exactness test of the C tokenizer (make test-tokenizer).
//
// Compares the ids of ./tokenizer with GPT-2's reference encoders run here in node:
//   - gpt-tokenizer (its GPT-2 encoding, fast): the torture set, a seeded fuzz set, the whole
//     Brown corpus as it sits in the shards (data/brown/), and the corpus as one text encoded
//     by the multi-threaded path and by the long-word (heap) BPE;
//   - gpt-3-encoder (the original JS port of GPT-2's encoder.py, slow): the torture set, the
//     fuzz set and three Brown documents.
// Then checks what must never crash: invalid UTF-8 (defined behaviour: raw bytes, exact round
// trip), a 100 MB single line, a 10 MB single word, bad tokenizer files, bad ids for decode,
// empty / binary inputs for shards.
//
// Usage: node data/test_tokenizer.js [--perturb] [--quick]
//   --perturb  changes one id of every reference: every exactness case must then FAIL (shows the
//              test can fail); the exit code is non-zero
//   --quick    skips the slow big-input cases (100 MB line, 10 MB word)
// Prints one PASS/FAIL line per case, then "N passed, N failed"; exit 1 on any failure.
// Run from the repository root after `make tokenizer data` and `sh data/prepare.sh refs`.

'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const ROOT = path.resolve(__dirname, '..');
const NPM = path.join(ROOT, 'data/.cache/npm');
const TOKENIZER = path.join(ROOT, 'tokenizer');
const TOKENIZER_FILE = path.join(ROOT, 'data/gpt2_tokenizer.bin');
const BROWN_TEXT = path.join(ROOT, 'data/.cache/brown_text');
const BROWN_SHARDS = path.join(ROOT, 'data/brown');
const VAL_EVERY = 20; // must match data/prepare.sh's default
const EOT = 50256;

const args = new Set(process.argv.slice(2));
const PERTURB = args.has('--perturb');
const QUICK = args.has('--quick');

function need(file, hint) {
  if (!fs.existsSync(file)) {
    console.error(`error: ${file} is missing (${hint})`);
    process.exit(1);
  }
}
need(TOKENIZER, 'run: make tokenizer');
need(TOKENIZER_FILE, 'run: make data/gpt2_tokenizer.bin');
need(path.join(NPM, 'gpt-tokenizer/package'), 'run: sh data/prepare.sh refs');
need(path.join(NPM, 'gpt-3-encoder/package'), 'run: sh data/prepare.sh refs');

const gptTokenizer = require(path.join(NPM, 'gpt-tokenizer/package/cjs/encoding/gpt2.js'));
const gpt3Encoder = require(path.join(NPM, 'gpt-3-encoder/package/Encoder.js'));
const REFS = {
  // "<|endoftext|>" in text is plain text, as in GPT-2's encoder.py and gpt-3-encoder
  'gpt-tokenizer': (text) => gptTokenizer.encode(text, { disallowedSpecial: new Set() }),
  'gpt-3-encoder': (text) => gpt3Encoder.encode(text),
};

let passed = 0, failed = 0;
function report(ok, name, detail) {
  if (ok) passed++; else failed++;
  console.log(`${ok ? 'PASS' : 'FAIL'}  ${name}${detail ? '  (' + detail + ')' : ''}`);
}

// Runs ./tokenizer; returns { status, stdout (Buffer), stderr (string) }.
function run(argv, input) {
  const r = spawnSync(TOKENIZER, argv, { cwd: ROOT, input, maxBuffer: 1 << 30 });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr ? r.stderr.toString() : '' };
}

function parseIds(buf) {
  const s = buf.toString().trim();
  return s.length === 0 ? [] : s.split(' ').map(Number);
}

function cEncode(input, extra = []) {
  const r = run([...extra, 'encode'], input);
  if (r.status !== 0) throw new Error(`./tokenizer encode exited ${r.status} ${r.signal || ''}: ${r.stderr.trim()}`);
  return parseIds(r.stdout);
}

// First difference of two id arrays, or null.
function firstDiff(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? null : n;
}

function perturbed(ids) {
  if (!PERTURB) return ids;
  const copy = ids.slice();
  if (copy.length === 0) copy.push(0); else copy[copy.length >> 1] = (copy[copy.length >> 1] + 1) % EOT;
  return copy;
}

function compare(name, got, want, bytes) {
  const d = firstDiff(got, want);
  if (d === null) report(true, name, `${bytes} bytes, ${got.length} ids`);
  else report(false, name, `first difference at id ${d}: C ${got.slice(d, d + 5).join(' ')} | ref ${want.slice(d, d + 5).join(' ')}; ${got.length} vs ${want.length} ids`);
}

// ---------------------------------------------------------------------------
// The torture set

const torture = {
  'empty input': '',
  'plain English': 'Hello world! The quick brown fox jumps over the lazy dog.\n',
  'contractions': "I'm sure you're right: we've, he'll, she'd, it's, don't, can't, 'tis, rock'n'roll, O'Neil's.",
  'contractions, other apostrophes and cases': "it\u2019s it\u02BCs it\uFF07s I'M YOU'RE WE'VE 'S 'T 'Ll ''s '''' ?'s ' s 'x'",
  'spaces, tabs, newlines, CRLF': 'a  b   c\t\td\n\ne \r\n f\r\n\r\ng    \n   h\t \t i \n\n\n\nend   ',
  'only whitespace': '   \n\t  \r\n ',
  'leading and trailing whitespace': ' \t leading and trailing \n\n ',
  'unicode whitespace': 'nbsp\u00A0x ideo\u3000x lsep\u2028x psep\u2029x bom\uFEFFx nel\u0085x zwsp\u200Bx em\u2003\u2003x ogham\u1680x',
  'CJK': '你好，世界！这是一个测试。これは日本語のテキストです。カタカナ、ひらがな。한국어 텍스트도 있습니다. 漢字かな交じり文',
  'emoji and ZWJ sequences': 'family 👨‍👩‍👧‍👦, flag 🏳️‍🌈, thumbs 👍🏽, flags 🇺🇸🇯🇵🇩🇪, sparkles ✨🔥💯, keycap 1️⃣ #️⃣, 🧑🏿‍🚀!',
  'combining marks': 'e\u0301 n\u0303 a\u030A\u0323 Z̷̢̛a̶l̴g̸o̵ text, Hangul jamo \u1100\u1161\u11A8, Devanagari नमस्ते, Thai สวัสดีครับ',
  'Arabic and Hebrew': 'مرحبا بالعالم! هذا اختبار. שלום עולם, זה מבחן. \u200Fmixed RTL\u200E 123',
  'digits of other scripts': 'Arabic-Indic ٠١٢٣٤٥٦٧٨٩, Devanagari ०१२३, Thai ๑๒๓, fullwidth １２３, Ⅻ ½ ① ²³ 𝟘𝟙𝟚, 12,345.67 1e10 0x1F 007',
  'letters of other scripts': 'Ελληνικά Кириллица Ժամ ქართული ᚠᛇᚻ 𐌰𐌱𐌲 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ǅ ß İ ŉ',
  'symbols and punctuation': 'Math: ∀x∈ℝ, x²≥0; arrows ←→⇒; currency $€£¥₹; quotes «»„“”‘’; dashes –—; ellipsis…; §¶†‡•',
  'code': 'int main(void) {\n\tprintf("%d\\n", a[i] >> 2); // comment\n\treturn 0;\n}\n\n    def f(x): return x**2 if x else None\n',
  'URLs and markup': 'See https://example.com/a/b?c=d&e=f#g or <a href="x">link</a> and [md](http://x.y) @user #tag',
  'endoftext as text': 'one<|endoftext|>two <|endoftext|> three<|endoftext',
  'control characters': 'nul\u0000x bell\u0007 esc\u001B[31mred\u001B[0m del\u007F c1\u0080\u009F',
  'noncharacters and replacement': 'ff\uFFFD fffe\uFFFE ffff\uFFFF max\u{10FFFF} private\uE000\u{F0000}',
  'words around the 64-byte array/heap BPE boundary': ['x'.repeat(63), 'y'.repeat(64), 'z'.repeat(65), ' ' + 'ab'.repeat(32), 'é'.repeat(33)].join(' '),
  'very long words': ['a'.repeat(3000), 'supercalifragilistic'.repeat(150), '9'.repeat(2000), '!?'.repeat(800), '漢字'.repeat(400), '😀'.repeat(300), ' '.repeat(1000) + 'x', '\n'.repeat(500)].join(' '),
};

// A seeded fuzz set: random mixtures of the pieces that make the regex branch.
function fuzzCases() {
  let seed = 1234567;
  const rand = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 4294967296; };
  const pools = [
    'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ', '0123456789', " '", "'s't're've'm'll'd",
    ' \t\n\r\u00A0\u3000\u2028\uFEFF', '.,;:!?-()[]{}"/\\@#$%^&*_+=<>|~`', 'éàüñçßøåæœ', '中文字日本語한국어',
    '😀👍🏽✨🇺🇸\u200D', '\u0301\u0308\u0323', '٠١٢०१२①½', 'αβγабвשלוםمرحبا',
  ].map((p) => Array.from(p));
  const cases = {};
  for (let c = 0; c < 6; c++) {
    let s = '';
    for (let piece = 0; piece < 250; piece++) {
      const pool = pools[Math.floor(rand() * pools.length)];
      const len = 1 + Math.floor(rand() * 6);
      for (let k = 0; k < len; k++) s += pool[Math.floor(rand() * pool.length)];
    }
    cases[`fuzz ${c + 1}`] = s;
  }
  return cases;
}

function testExact() {
  const cases = { ...torture, ...fuzzCases() };
  for (const [name, text] of Object.entries(cases)) {
    const input = Buffer.from(text, 'utf8');
    let got;
    try { got = cEncode(input); } catch (e) { report(false, name, e.message); continue; }
    for (const [ref, encode] of Object.entries(REFS)) compare(`${name} vs ${ref}`, got, perturbed(encode(text)), input.length);
    const back = run(['decode'], Buffer.from(got.join(' ')));
    report(back.status === 0 && back.stdout.equals(input), `${name}: decode(encode(x)) == x`);
  }
}

// ---------------------------------------------------------------------------
// The whole Brown corpus, as written into the shards

function readShards(split) {
  const files = fs.readdirSync(BROWN_SHARDS).filter((f) => f.startsWith(`brown_${split}_`) && f.endsWith('.bin')).sort();
  const parts = [];
  for (const f of files) {
    const buf = fs.readFileSync(path.join(BROWN_SHARDS, f));
    const header = new Int32Array(buf.buffer, buf.byteOffset, 256);
    const count = header[2];
    if (header[0] !== 20240520 || header[1] !== 1 || buf.length !== 1024 + 2 * count)
      throw new Error(`${f}: bad header (magic ${header[0]}, version ${header[1]}, count ${count}, ${buf.length} bytes)`);
    parts.push(new Uint16Array(buf.buffer.slice(buf.byteOffset + 1024, buf.byteOffset + buf.length)));
  }
  const all = [];
  for (const p of parts) for (const id of p) all.push(id);
  return { ids: all, files: files.length };
}

function testBrown() {
  if (!fs.existsSync(BROWN_TEXT) || !fs.existsSync(BROWN_SHARDS)) {
    report(false, 'Brown corpus', 'data/brown/ or data/.cache/brown_text/ missing: run make data');
    return;
  }
  const names = fs.readdirSync(BROWN_TEXT).sort();
  const texts = names.map((n) => fs.readFileSync(path.join(BROWN_TEXT, n), 'utf8'));
  const bytes = texts.reduce((a, t) => a + Buffer.byteLength(t), 0);
  // expected shard streams: every document starts with <|endoftext|>, document i is val if i % 20 == 0
  const want = { train: [], val: [] };
  const t0 = Date.now();
  for (let i = 0; i < texts.length; i++) {
    const ids = REFS['gpt-tokenizer'](texts[i]);
    const dst = want[i % VAL_EVERY === 0 ? 'val' : 'train'];
    dst.push(EOT);
    for (const id of ids) dst.push(id);
  }
  const refSeconds = (Date.now() - t0) / 1000;
  for (const split of ['train', 'val']) {
    let got;
    try { got = readShards(split); } catch (e) { report(false, `Brown ${split} shards`, e.message); continue; }
    compare(`Brown corpus ${split} shards (${got.files} files) vs gpt-tokenizer`, got.ids, perturbed(want[split]), `${split}`);
  }
  console.log(`      (gpt-tokenizer encoded the ${names.length} documents, ${(bytes / 1e6).toFixed(2)} MB, in ${refSeconds.toFixed(1)} s)`);

  // the corpus as one text: the parallel path (small pieces, 2 threads) and the heap BPE
  const all = Buffer.from(texts.join(''), 'utf8');
  const wantAll = perturbed(REFS['gpt-tokenizer'](texts.join('')));
  compare('Brown corpus as one text, 2 threads in 64 KB pieces, vs gpt-tokenizer',
    cEncode(all, ['--threads', '2', '--chunk-bytes', '65536']), wantAll, all.length);
  compare('Brown corpus as one text, heap BPE for every word, vs gpt-tokenizer',
    cEncode(all, ['--threads', '1', '--bpe-heap']), wantAll, all.length);

  // small files for the slow original port
  for (const n of ['ca01.txt', 'cj01.txt', 'cn01.txt']) {
    const text = fs.readFileSync(path.join(BROWN_TEXT, n), 'utf8');
    compare(`Brown ${n} vs gpt-3-encoder`, cEncode(Buffer.from(text)), perturbed(REFS['gpt-3-encoder'](text)), Buffer.byteLength(text));
  }
}

// ---------------------------------------------------------------------------
// The self-check: the comparison must notice one changed id

function testSelfCheck() {
  const text = torture['plain English'];
  const want = REFS['gpt-tokenizer'](text).slice();
  want[3] += 1;
  const d = firstDiff(cEncode(Buffer.from(text)), want);
  report(d === 3, 'self-check: a reference with one changed id is detected as a mismatch', d === null ? 'NOT detected' : `detected at id ${d}`);
}

// ---------------------------------------------------------------------------
// Inputs that must not crash

function roundTrip(name, input, extra = []) {
  const enc = run([...extra, 'encode'], input);
  if (enc.status !== 0) { report(false, name, `encode exited ${enc.status} ${enc.signal || ''} ${enc.stderr.trim()}`); return null; }
  const ids = parseIds(enc.stdout);
  const bad = ids.find((id) => !(id >= 0 && id < 50257));
  const dec = run(['decode'], enc.stdout);
  const ok = bad === undefined && dec.status === 0 && dec.stdout.equals(input);
  report(ok, name, `${input.length} bytes -> ${ids.length} ids, decode ${dec.stdout.equals(input) ? 'gives the input back' : 'DIFFERS'}`);
  return ids;
}

function oneLineError(name, r, mustContain) {
  const lines = r.stderr.trim().split('\n');
  const ok = r.status === 1 && !r.signal && lines.length === 1 && lines[0].startsWith('error: ') && lines[0].includes(mustContain);
  report(ok, name, `exit ${r.status}: ${lines[0]}`);
}

function testBadInput() {
  const invalid = {
    'invalid UTF-8: stray continuation bytes': Buffer.from([0x61, 0x80, 0x62, 0xBF, 0xBF, 0x20, 0x63]),
    'invalid UTF-8: truncated sequences': Buffer.concat([Buffer.from('word '), Buffer.from([0xE4, 0xBD]), Buffer.from(' next '), Buffer.from([0xF0, 0x9F, 0x98])]),
    'invalid UTF-8: overlong, surrogates, > U+10FFFF': Buffer.from([0xC0, 0xAF, 0x20, 0xED, 0xA0, 0x80, 0x20, 0xF4, 0x90, 0x80, 0x80, 0x20, 0xFF, 0xFE, 0x41]),
    'invalid UTF-8: Latin-1 text': Buffer.from('caf\xe9 na\xefve \xa9 1999 \xbfqu\xe9?', 'latin1'),
  };
  for (const [name, buf] of Object.entries(invalid)) roundTrip(`${name} (raw byte tokens, exact round trip)`, buf);
  // Invalid bytes are characters of class OTHER, so the text around them tokenizes exactly as
  // the reference tokenizes the same text with U+FFFD (also OTHER) in their place: ids agree
  // everywhere except inside the pre-tokens that hold the invalid bytes.
  for (const [before, byte, after] of [['Hello world', 0x80, 'and more'], ['a ', 0xFF, ' b'], [' it', 0xC3, "'s"],
    ['123', 0xBF, '456'], ['end ', 0xE4, ''], ['', 0xF5, 'start'], ['x\n', 0x80, '\n\ny']]) {
    const raw = Buffer.concat([Buffer.from(before), Buffer.from([byte]), Buffer.from(after)]);
    const got = cEncode(raw), want = perturbed(REFS['gpt-tokenizer'](before + '\uFFFD' + after));
    let p = 0, q = 0;
    while (p < got.length && p < want.length && got[p] === want[p]) p++;
    while (q < got.length - p && q < want.length - p && got[got.length - 1 - q] === want[want.length - 1 - q]) q++;
    const middle = (ids) => run(['decode'], Buffer.from(ids.join(' '))).stdout.toString('utf8');
    const a = middle(got.slice(p, got.length - q)), b = middle(want.slice(p, want.length - q));
    report(a === b, `invalid byte 0x${byte.toString(16)} in ${JSON.stringify(before + '_' + after)} splits like U+FFFD vs gpt-tokenizer`,
      `ids differ only in ${JSON.stringify(a)}`);
  }
  roundTrip('binary input (random bytes incl. NUL)', Buffer.from(Array.from({ length: 20000 }, (_, i) => (i * 2654435761 >>> 13) & 255)));
  const empty = run(['encode'], Buffer.alloc(0));
  report(empty.status === 0 && empty.stdout.toString() === '\n', 'encode of empty input prints an empty line');
  const emptyDecode = run(['decode'], Buffer.alloc(0));
  report(emptyDecode.status === 0 && emptyDecode.stdout.length === 0, 'decode of empty input prints nothing');

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tok-test-'));
  try {
    const good = fs.readFileSync(TOKENIZER_FILE);
    const write = (name, buf) => { const p = path.join(tmp, name); fs.writeFileSync(p, buf); return p; };
    const wrongMagic = Buffer.from(good); wrongMagic.writeInt32LE(12345, 0);
    oneLineError('tokenizer file with a wrong magic: one-line error', run(['-t', write('magic.bin', wrongMagic), 'encode'], Buffer.from('x')), 'bad magic 12345');
    oneLineError('truncated tokenizer file: one-line error', run(['-t', write('trunc.bin', good.subarray(0, good.length - 7)), 'encode'], Buffer.from('x')), 'merges');
    oneLineError('tokenizer file of 10 bytes: one-line error', run(['-t', write('tiny.bin', good.subarray(0, 10)), 'decode'], Buffer.from('1')), 'truncated');
    const badVersion = Buffer.from(good); badVersion.writeInt32LE(99, 4);
    oneLineError('tokenizer file with an unknown version: one-line error', run(['-t', write('ver.bin', badVersion), 'encode'], Buffer.from('x')), 'unsupported version 99');
    oneLineError('missing tokenizer file: one-line error', run(['-t', path.join(tmp, 'none.bin'), 'encode'], Buffer.from('x')), 'no such file');
    // llm.c's version 2 file: the token table only -> decodes, refuses to encode
    const header = Buffer.from(good.subarray(0, 1024));
    header.writeInt32LE(2, 4); header.writeInt32LE(0, 16);
    let pos = 1024;
    for (let i = 0; i < 50257; i++) pos += 1 + good[pos];
    const v2 = write('v2.bin', Buffer.concat([header, good.subarray(1024, pos)]));
    const d2 = run(['-t', v2, 'decode'], Buffer.from('15496 995 0 50256'));
    report(d2.status === 0 && d2.stdout.toString() === 'Hello world!<|endoftext|>', "llm.c's version 2 tokenizer file decodes", JSON.stringify(d2.stdout.toString()));
    oneLineError('version 2 tokenizer file refuses to encode: one-line error', run(['-t', v2, 'encode'], Buffer.from('x')), 'can only decode');
    oneLineError('decode of a non-number: one-line error', run(['decode'], Buffer.from('15496 hello 995')), "'hello'");
    oneLineError('decode of an id out of range: one-line error', run(['decode'], Buffer.from('15496 50257')), "'50257'");

    // shards: empty and binary files are skipped with a warning; nothing usable is an error
    const dir = path.join(tmp, 'in');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'a_empty.txt'), '');
    fs.writeFileSync(path.join(dir, 'b_binary.bin'), Buffer.from([0x89, 0x50, 0x4E, 0x47, 0, 0, 0, 13, 0xFF]));
    const none = run(['shards', path.join(tmp, 'out/x'), dir]);
    oneLineError('shards of only empty/binary files: error, no shards left', { ...none, stderr: none.stderr.split('\n').filter((l) => !l.startsWith('warning:')).join('\n') }, 'no text found');
    report(/warning: .*a_empty.txt: empty file, skipped/.test(none.stderr) && /warning: .*b_binary.bin: contains NUL bytes/.test(none.stderr) &&
      (!fs.existsSync(path.join(tmp, 'out')) || fs.readdirSync(path.join(tmp, 'out')).length === 0),
      'shards warns about the empty and the binary file and writes nothing');
    for (let i = 0; i < 3; i++) fs.writeFileSync(path.join(dir, `c${i}.txt`), `Document number ${i}.\n`);
    const some = run(['shards', '--val-every', '2', path.join(tmp, 'out/x'), dir]);
    const train = path.join(tmp, 'out/x_train_000000.bin'), val = path.join(tmp, 'out/x_val_000000.bin');
    let ok = some.status === 0 && fs.existsSync(train) && fs.existsSync(val);
    if (ok) {
      const t = fs.readFileSync(train), v = fs.readFileSync(val);
      const ids = (b) => Array.from(new Uint16Array(b.buffer.slice(b.byteOffset + 1024, b.byteOffset + b.length)));
      const wantTrain = [EOT, ...REFS['gpt-tokenizer']('Document number 1.\n')];
      const wantVal = [EOT, ...REFS['gpt-tokenizer']('Document number 0.\n'), EOT, ...REFS['gpt-tokenizer']('Document number 2.\n')];
      ok = t.readInt32LE(0) === 20240520 && t.readInt32LE(4) === 1 && t.readInt32LE(8) === wantTrain.length &&
        firstDiff(ids(t), wantTrain) === null && firstDiff(ids(v), wantVal) === null;
    }
    report(ok, 'shards: header, <|endoftext|> before each document, val = documents 0, 2, ...', some.stderr.trim().split('\n').join('; '));
    const small = run(['shards', path.join(tmp, 'out2/y'), path.join(dir, 'c0.txt')]);
    oneLineError('shards of one document: error (empty train split), nothing written', small, 'train split is empty');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }

  if (QUICK) return;
  // 100 MB on one line: the Brown text with its newlines turned into spaces, repeated
  if (fs.existsSync(BROWN_TEXT)) {
    const names = fs.readdirSync(BROWN_TEXT).sort();
    const line = Buffer.from(names.map((n) => fs.readFileSync(path.join(BROWN_TEXT, n), 'latin1')).join(' ').replace(/\n/g, ' '), 'latin1');
    const big = Buffer.alloc(100 * 1000 * 1000);
    for (let off = 0; off < big.length; off += line.length) line.copy(big, off, 0, Math.min(line.length, big.length - off));
    const t0 = Date.now();
    const ids = roundTrip('a 100 MB single line (all threads)', big);
    if (ids) {
      const one = cEncode(big, ['--threads', '1']);
      compare(`a 100 MB single line: 1 thread == all threads (${((Date.now() - t0) / 1000).toFixed(1)} s for the three runs)`, one, ids, big.length);
    }
  }
  // a 10 MB "word": one pre-token, the heap BPE's O(n log n) case
  roundTrip('a 10 MB single word (one pre-token)', Buffer.from('abcdefghij'.repeat(1000 * 1000)));
  const word = 'pneumonoultramicroscopicsilicovolcanoconiosis'.repeat(400);
  compare('an 18 KB single word vs gpt-tokenizer', cEncode(Buffer.from(word)), perturbed(REFS['gpt-tokenizer'](word)), word.length);
}

// ---------------------------------------------------------------------------

testExact();
testBrown();
testSelfCheck();
testBadInput();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
