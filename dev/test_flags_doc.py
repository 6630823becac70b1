#!/usr/bin/env python3
"""dev/test_flags_doc.py -- README.md's flag table must say what ./train_gpt -h says.

usage: python3 dev/test_flags_doc.py [README] [BINARY]    (defaults: README.md ./train_gpt)

Both come from people's hands at different times: -h is generated from gptc/cli.h's flag table,
README's table is written by hand. This check holds them together: the same flags, and for each the
same default (numbers compared as numbers: README's 1e-3 is -h's 0.001). It then proves it can fail:
the same comparison against README's table with one default changed and one row dropped must find
both. Last line: "N passed, N failed"; exit status 1 on any failure.
"""
import re, subprocess, sys

def parse_help(text):
    """{flag: default text or ''} from -h: an entry starts with '  -flag <meta>'; continuation lines
    start with spaces only; the default is the last '(default X)' of the entry"""
    flags, cur = {}, None
    for line in text.splitlines():
        m = re.match(r'^  (--?[A-Za-z0-9-]+)\s', line)
        if m:
            cur = m.group(1)
            flags[cur] = ''
        elif not line.startswith('    ') :
            cur = None
        if cur is not None:
            d = re.findall(r'\(default ([^()]*)\)\s*$', line)
            if d:
                flags[cur] = d[-1].strip()
    flags.pop('-h', None)
    return flags

def parse_readme(text):
    """{flag: default} from the table under '## Flags': rows '| `-x` | meaning | default |'; a row
    may name several flags, its default cell then lists theirs separated by ', '"""
    flags = {}
    section = re.search(r'^## Flags\n(.*?)(?=^## )', text, re.S | re.M)
    if section is None:
        return flags
    for line in section.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')] if line.startswith('|') else []
        if len(cells) < 3 or not cells[0].startswith('`-'):
            continue
        names = re.findall(r'`(--?[A-Za-z0-9-]+)`', cells[0])
        defaults = [d.strip().strip('`') for d in cells[-1].split(',')] if len(names) > 1 else [cells[-1].strip().strip('`')]
        if len(defaults) != len(names):
            defaults = [cells[-1]] * len(names)
        for n, d in zip(names, defaults):
            flags[n] = d
    return flags

def same_default(a, b):
    try:
        x, y = float(a), float(b)
        return abs(x - y) <= 1e-9 * max(1.0, abs(x), abs(y))
    except ValueError:
        return a == b

def compare(help_flags, readme_flags):
    """the differences, one line each"""
    out = []
    for f in help_flags:
        if f not in readme_flags:
            out.append(f'{f}: in -h, not in README\'s flag table')
        elif not same_default(help_flags[f], readme_flags[f]):
            out.append(f'{f}: default {help_flags[f]!r} in -h, {readme_flags[f]!r} in README')
    for f in readme_flags:
        if f not in help_flags:
            out.append(f'{f}: in README\'s flag table, not in -h')
    return out

def main():
    readme_path = sys.argv[1] if len(sys.argv) > 1 else 'README.md'
    binary = sys.argv[2] if len(sys.argv) > 2 else './train_gpt'
    help_text = subprocess.run([binary, '-h'], capture_output=True, text=True, check=True).stdout
    readme = open(readme_path, encoding='utf-8').read()
    hf, rf = parse_help(help_text), parse_readme(readme)
    passed = failed = 0
    def check(name, ok, detail):
        nonlocal passed, failed
        print(f'{name:<28} {detail}  {"OK" if ok else "FAILED"}')
        passed, failed = passed + ok, failed + (not ok)
    check('flags parsed', len(hf) >= 30 and len(rf) >= 30, f'{len(hf)} in -h, {len(rf)} in README')
    diffs = compare(hf, rf)
    for d in diffs:
        print('   ', d)
    check('README = -h', not diffs, f'{len(hf)} flags, {len(diffs)} differences')
    # can fail: a copy of README's text with -x's default changed and -K's row dropped, read by
    # the same parser
    lines = []
    for line in readme.splitlines():
        if line.startswith('| `-K` |'):
            continue
        if line.startswith('| `-x` |'):
            cells = line.rstrip().rstrip('|').split('|')
            cells[-1] = ' %d ' % (int(float(rf.get('-x', '0'))) + 1)
            line = '|'.join(cells) + '|'
        lines.append(line)
    found = compare(hf, parse_readme('\n'.join(lines) + '\n'))
    check('README = -h can fail', any(d.startswith('-x:') for d in found) and any(d.startswith('-K:') for d in found),
          f'a changed default and a dropped row give {len(found)} differences')
    print(f'\n{passed} passed, {failed} failed')
    sys.exit(1 if failed else 0)

if __name__ == '__main__':
    main()
