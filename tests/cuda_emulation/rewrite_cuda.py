#!/usr/bin/env python3
"""Rewrites a CUDA source into C++ for the emulator (emulator.h), changing only what C++ cannot
parse: each launch `kernel<<<grid, block, shmem, stream>>>(args)` becomes
`::emu::launch("kernel", ::emu::Config(grid, block, shmem, stream), lambda, args)`, the lambda
calling kernel (so that a kernel template deduces its arguments as the launch would); each
`__shared__ T name[dims];` a reference to the block's storage for that declaration; and each
`extern __shared__ T name[];` a pointer to the launch's dynamic shared memory. Line numbers are
kept. Usage: rewrite_cuda.py ID INPUT OUTPUT (ID numbers the file's __shared__ declarations)."""
import re
import sys


def kernel_start(text, end):
    """Start of the kernel expression that ends at `end` (a name, maybe templated, maybe
    qualified)."""
    i = end
    while text[i - 1].isspace():
        i -= 1
    if text[i - 1] == '>':
        depth = 0
        while True:
            i -= 1
            depth += {'>': 1, '<': -1}.get(text[i], 0)
            if depth == 0:
                break
    while i > 0 and (text[i - 1].isalnum() or text[i - 1] in '_:'):
        i -= 1
    return i


def rewrite_launches(text):
    out, pos = [], 0
    while (open_at := text.find('<<<', pos)) >= 0:
        start = kernel_start(text, open_at)
        close_at = text.index('>>>', open_at)
        paren = close_at + 3
        while text[paren].isspace():
            paren += 1
        if text[paren] != '(':
            sys.exit(f'rewrite_cuda.py: no argument list after a launch at offset {close_at}')
        kernel = text[start:open_at].strip()
        config = text[open_at + 3:close_at]
        rest = paren + 1
        empty = text[rest:].lstrip().startswith(')')
        name = ' '.join(kernel.split())
        out.append(text[pos:start])
        out.append(f'::emu::launch("{name}", ::emu::Config({config}), '
                   f'[](auto... emu_args) {{ {kernel}(emu_args...); }}{"" if empty else ", "}')
        # Newlines inside the launch head are kept so that line numbers do not move.
        out.append('\n' * text[start:rest].count('\n'))
        pos = rest
    out.append(text[pos:])
    return ''.join(out)


DYNAMIC = re.compile(r'extern\s+__shared__\s+([\w:<> ]+?)\s+(\w+)\s*\[\s*\]\s*;')
STATIC = re.compile(r'__shared__\s+([\w:<> ]+?)\s+(\w+(?:\s*\[[^\]]*\])*'
                    r'(?:\s*,\s*\w+(?:\s*\[[^\]]*\])*)*)\s*;')
DECLARATOR = re.compile(r'(\w+)((?:\s*\[[^\]]*\])*)')


def rewrite_shared(text, file_id):
    lines = text.split('\n')
    for number, line in enumerate(lines):
        line = DYNAMIC.sub(lambda m: f'{m[1]}* {m[2]} = ::emu::dynamic_shared<{m[1]}>();', line)

        def static(m):
            declared = []
            for k, d in enumerate(DECLARATOR.finditer(m[2])):
                key = (file_id * 10000 + number + 1) * 8 + k
                declared.append(f'auto& {d[1]} = ::emu::shared<{m[1]}{d[2]}, {key}>();')
            return ' '.join(declared)

        lines[number] = STATIC.sub(static, line)
    return '\n'.join(lines)


def main():
    file_id, source, target = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    with open(source) as f:
        text = f.read()
    text = rewrite_shared(rewrite_launches(text), file_id)
    if '__shared__' in text or '<<<' in text:
        sys.exit(f'rewrite_cuda.py: {source}: a __shared__ or <<< form it does not know is left')
    with open(target, 'w') as f:
        f.write(f'#line 1 "{source}"\n' + text)


main()
