// bench_tokenizer.js: encoding speed of ./tokenizer against the fastest JavaScript GPT-2 encoder
// (gpt-tokenizer), in the same run on the same text: the default corpus (Brown, ~6 MB).
//
// Usage: node data/bench_tokenizer.js [FILE]     (make bench-tokenizer)
// Every timed run starts from an empty cache (C: a fresh TokenizerCache; JS: clearMergeCache),
// so both encode the corpus "from scratch"; the best of several runs is reported, since the
// machine may be shared. Timings are not pass/fail: this prints numbers only.

'use strict';
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const ROOT = path.resolve(__dirname, '..');
const NPM = path.join(ROOT, 'data/.cache/npm');
const BROWN_TEXT = path.join(ROOT, 'data/.cache/brown_text');

let file = process.argv[2];
if (!file) { // the Brown corpus as one file
  file = path.join(ROOT, 'data/.cache/brown_all.txt');
  if (!fs.existsSync(BROWN_TEXT)) { console.error('error: data/.cache/brown_text missing (run: make data)'); process.exit(1); }
  const names = fs.readdirSync(BROWN_TEXT).sort();
  fs.writeFileSync(file, Buffer.concat(names.map((n) => fs.readFileSync(path.join(BROWN_TEXT, n)))));
}
const bytes = fs.statSync(file).size;
console.log(`bench: ${path.relative(ROOT, file)} (${(bytes / 1e6).toFixed(2)} MB), node ${process.version}`);

const c = spawnSync(path.join(ROOT, 'tokenizer'), ['bench', file, '--reps', '5'], { cwd: ROOT, encoding: 'utf8' });
if (c.status !== 0) { console.error(`error: ./tokenizer bench failed: ${c.stderr.trim()}`); process.exit(1); }
process.stdout.write(c.stdout);
const cSingle = Number(/single-thread:\s+([\d.]+) MB\/s/.exec(c.stdout)[1]);
const cTokens = Number(/-> (\d+) tokens/.exec(c.stdout)[1]);

const gt = require(path.join(NPM, 'gpt-tokenizer/package/cjs/encoding/gpt2.js'));
const text = fs.readFileSync(file, 'utf8');
let best = Infinity, n = 0;
for (let rep = 0; rep < 4; rep++) { // rep 0 warms up the JIT and is not counted
  gt.clearMergeCache();
  const t0 = process.hrtime.bigint();
  n = gt.encode(text, { disallowedSpecial: new Set() }).length;
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  if (rep > 0) best = Math.min(best, dt);
}
const js = bytes / 1e6 / best;
console.log(`gpt-tokenizer:   ${js.toFixed(1)} MB/s (${n} tokens${n === cTokens ? ', same count as C' : ', DIFFERENT count from C'}, best of 3)`);

const g3 = require(path.join(NPM, 'gpt-3-encoder/package/Encoder.js'));
const small = text.slice(0, 20000);
const t0 = process.hrtime.bigint();
g3.encode(small);
const g3Speed = Buffer.byteLength(small) / 1e6 / (Number(process.hrtime.bigint() - t0) / 1e9);
console.log(`gpt-3-encoder:   ${(g3Speed * 1000).toFixed(1)} KB/s (first 20 KB only: it is slow)`);
console.log(`C single-thread / gpt-tokenizer = ${(cSingle / js).toFixed(1)}x (target >= 3x)`);
