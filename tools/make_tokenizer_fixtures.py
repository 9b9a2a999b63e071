#!/usr/bin/env python3
"""Builds tests/fixtures/tokenizers/: byte-level BPE tokenizers and the ids Hugging Face
`tokenizers` gives for a few hundred strings; tests/unit/data/test_bpe_tokenizer.cpp checks that
BpeTokenizer gives the same ids.

    pip install tokenizers            # 0.23.3 made the checked-in files
    cmake --build build --target moe-data
    python3 tools/make_tokenizer_fixtures.py --moe-data build/moe-data

Everything is real text found on a Debian machine, no network: corpora/kjv.txt (written by
launch/quickstart.sh), the license texts in /usr/share/common-licenses, the Python standard
library's sources, and translated messages from the system's gettext catalogs (16 languages, CJK,
Arabic, Hebrew, Devanagari and Thai among them). Written, under 1 MB together:

  train.txt     the training text (about 150 KB); `ours` is trained on it again by the C++ test
  gpt2/         HF-trained, ByteLevel pre-tokenizer (GPT-2 regex), <|endoftext|>; saved both as
                tokenizer.json and as vocab.json + merges.txt (HF gives both the same ids)
  llama3/       HF-trained, Split(Llama-3 regex) + ByteLevel, a BOS template, and ignore_merges
                with vocabulary words that no merge reaches (as in Llama-3's, converted from
                tiktoken), so that ignore_merges changes some ids
  qwen2/        HF-trained, NFC normalizer, Split(Qwen2 regex) + ByteLevel, chat special tokens, and
                an added token that matches only after normalization
  roberta/      HF-trained, ByteLevel with add_prefix_space, <mask> with lstrip, and added tokens
                that only the two-pass (non-normalized, then normalized) matching gets right
  ours/         trained by `moe-data train-tokenizer` on train.txt, loaded and run by HF
  cases.json    {"strings": [...], "ids": {"<tokenizer>": [[id, ...] per string]}}, ids from
                encode(s, add_special_tokens=False)
  unicode.json  what HF's regex engine (Oniguruma) makes of every code point, found by splitting
                probes with the GPT-2 and Llama-3 regexes: "classes", runs [first code point,
                "L" | "N" | "S" (white space) | "O" (other)] for \p{L}, \p{N} and \s; and
                "contractions", the letters that (?i:'s|'t|'re|'ve|'m|'ll|'d) matches in each place
"""
import argparse
import gettext
import glob
import json
import pathlib
import random
import subprocess
import sysconfig
import unicodedata

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from tokenizers import processors, trainers

ROOT = pathlib.Path(__file__).resolve().parent.parent
VOCAB_SIZE = 1024
LANGUAGES = ["de", "fr", "es", "pl", "tr", "vi", "el", "ru", "uk", "ar", "he", "hi", "th", "ja",
             "zh_CN", "ko"]
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
          r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")

# Edge cases: white space runs, contractions, digits, scripts, emoji, Unicode 16 (letters in
# Oniguruma) and 17 (not yet), control characters, and added tokens inside text.
HAND_WRITTEN = [
    "", " ", "  ", "\t", "\n", "\r\n", "a", "Hello world", "Hello  world", "   leading spaces",
    "trailing spaces   ", "tabs\tbetween\t\twords", "\tindented\n\t\tdeeper", "new\nlines\n\n\n",
    "\r\n\r\nwindows\r\nlines\r\n", " \n \n  x", "x \n", "spaces then newline   \nnext",
    "a" + " " * 40 + "b", "\n" * 30 + "end", " " * 17, "!!! ??? ... ---", " ?!x", "x?! y",
    "I'm you're he's we've they'll I'd don't", "I'M YOU'RE HE'S WE'VE THEY'LL I'D DON'T",
    "x'S x'Re x'vE x'lL x'D x'M x'T", "it's'sa 's 'S", "x'\u017fa and x'\u212aa", "'''",
    "1 12 123 1234 12345 123456 1234567", "3.14159 2,718 1e-9 0x1F -42 +7", "1st 2nd 3rd 4th",
    "\u0660\u0661\u0662\u0663 \u096a\u096b\u096c \u2460\u2461\u2462 \u216b \u00bd \u00b2",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber Stra\u00dfe", "e\u0301 a\u0308 n\u0303",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3067\u3059\u3002",
    "\u4e2d\u6587\u6587\u672c\uff0c\u5305\u542b\u6807\u70b9\u3002",
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e0a\u0e32\u0e27\u0e42\u0e25\u0e01",
    "\u03b1\u03b2\u03b3 \u0391\u0392\u0393 \u043f\u0440\u0438\u0432\u0435\u0442 \u041c\u0418\u0420",
    "\U0001F600\U0001F44D\U0001F3FD family \U0001F468\u200d\U0001F469\u200d\U0001F467 flags "
    "\U0001F1EB\U0001F1F7\U0001F1EF\U0001F1F5", "emoji\U0001F600inside\U0001F680words",
    "\u2211\u222b\u221a\u221e \u2264 \u2265 \u2260 \u00b1", "a\u00a0b\u00a0\u00a0c",
    "x\u3000\u3000y",
    "p\u2028q\u2029r", "s\u0085\u0085t", "u\x1c\x1cv", "zero\u200bwidth", "\ufeffbom",
    "\x00\x01\x02\x7f", "\u1680\u2000\u2001\u200a word", "\U0001E5D0\U0001E5D1 \U00011BC0",
    "\U00010D40\U00010D41 digits", "\U00010940\U000323B0 seventeen",
    "\u24b6\u24b7 \u0345 \u2160\u2161",
    "a" * 300, "\u00e9" * 100, "\U0001F600" * 20, "supercalifragilisticexpialidocious" * 3,
    "def f(x):\n    return x ** 2  # square\n", "if (a && b) { c++; }\n",
    "https://example.com/a?b=c&d=e",
    "user@example.org", '{"key": [1, 2, 3], "other": null}', "snake_case camelCase kebab-case",
    "a<|endoftext|>b", "<|endoftext|><|endoftext|>", " <|endoftext|> ", "<|endoftext|",
    "x<|end_of_text|>y<|begin_of_text|>z", "<|im_start|>user\nhi there<|im_end|>\n",
    "<s> </s> <mask> x   <mask>   y", "a[NEW]  b [NEW]", "x[NEW]]y", "NEW]] and [NEW]",
    "<|endoftext|>Once upon a time<|endoftext|>", "\n<|endoftext|>\n",
    "Vie\u0302\u0323t Nam, Vi\u1ec7t Nam", "\u1100\u1161\u11a8 \u1100\u1161 \uac00\u11a8",
    "\u212b \u2126 \u0915\u093c \u0958", "a\u0323\u0302 a\u0302\u0323 \u0344",
    "un cafe\u0301 noir, un caf\u00e9 noir",
]
UNMERGED_WORDS = ["Hello", " world", "123"]  # in HAND_WRITTEN as llama3 words


def read_text(path):
    return pathlib.Path(path).read_text(encoding="utf-8", errors="replace")


def paragraphs(text):
    return [p.strip("\n") for p in text.split("\n\n") if p.strip()]


def gettext_messages():
    """Translated messages, by language, from the .mo catalogs on this machine."""
    messages = {}
    for language in LANGUAGES:
        found = []
        for path in sorted(glob.glob(f"/usr/share/locale/{language}/LC_MESSAGES/*.mo")):
            with open(path, "rb") as f:
                try:
                    catalog = gettext.GNUTranslations(f)._catalog
                except Exception:  # a catalog this module cannot read: skip it
                    continue
            found += [v for k, v in sorted(catalog.items(), key=str) if k and 20 <= len(v) <= 300]
        messages[language] = found
    return messages


def sources(rng):
    """(training text, held-out samples for test strings) from the sources above."""
    verses = read_text(ROOT / "corpora" / "kjv.txt").splitlines()
    kjv = ["\n".join(verses[i:i + 3]) for i in range(0, len(verses), 3)]
    licenses = [p for f in sorted(glob.glob("/usr/share/common-licenses/*"))
                if pathlib.Path(f).is_file() for p in paragraphs(read_text(f))]
    stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
    python = [p for f in sorted(stdlib.glob("*.py")) for p in paragraphs(read_text(f))]
    messages = gettext_messages()
    train, held_out = [], []
    for pool, n_train, n_test in [(kjv, 120, 60), (licenses, 60, 40), (python, 120, 60)]:
        picked = rng.sample(pool, n_train + n_test)
        train += [p[:1000] for p in picked[:n_train]]
        held_out += [p[:200] for p in picked[n_train:]]
    for language in LANGUAGES:
        picked = rng.sample(messages[language], min(len(messages[language]), 60))
        train += picked[:50]
        held_out += picked[50:54]
    rng.shuffle(train)
    return "\n\n".join(train) + "\n", held_out


def train_hf(train_path, pre_tokenizer, special_tokens, ignore_merges=False):
    tokenizer = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=special_tokens,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train([str(train_path)], trainer)
    return tokenizer


def split_then_byte_level(regex):
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(regex), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])


def with_unmerged_words(tokenizer, words):
    """The tokenizer with words added to its model's vocabulary but to no merge."""
    spell = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    data = json.loads(tokenizer.to_str())
    vocab = data["model"]["vocab"]
    for word in words:
        vocab.setdefault(spell.pre_tokenize_str(word)[0][0], len(vocab))
    return Tokenizer.from_str(json.dumps(data))


def without_ignore_merges(tokenizer):
    data = json.loads(tokenizer.to_str())
    data["model"]["ignore_merges"] = False
    return Tokenizer.from_str(json.dumps(data))


def build_tokenizers(out, train_path, moe_data):
    """Writes every tokenizer under out; returns {name: Tokenizer as HF loads it from the files}."""
    made = {}

    gpt2 = train_hf(train_path, pre_tokenizers.ByteLevel(add_prefix_space=False),
                    ["<|endoftext|>"])
    (out / "gpt2").mkdir(parents=True, exist_ok=True)
    gpt2.save(str(out / "gpt2" / "tokenizer.json"))
    gpt2.model.save(str(out / "gpt2"))
    made["gpt2"] = Tokenizer.from_file(str(out / "gpt2" / "tokenizer.json"))
    # The vocab.json + merges.txt reading of the same model, as transformers' GPT-2 builds it.
    files = Tokenizer(models.BPE.from_file(str(out / "gpt2" / "vocab.json"),
                                           str(out / "gpt2" / "merges.txt")))
    files.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    files.add_special_tokens(["<|endoftext|>"])
    made["gpt2_files"] = files

    llama3 = train_hf(train_path, split_then_byte_level(LLAMA3),
                      ["<|begin_of_text|>", "<|end_of_text|>"], ignore_merges=True)
    llama3 = with_unmerged_words(llama3, UNMERGED_WORDS)
    llama3.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", 0)])

    qwen2 = train_hf(train_path, split_then_byte_level(QWEN2),
                     ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    qwen2.normalizer = normalizers.NFC()
    qwen2.add_tokens([AddedToken("cafe\u0301", normalized=True)])

    roberta = train_hf(train_path, pre_tokenizers.ByteLevel(add_prefix_space=True),
                       ["<s>", "<pad>", "</s>", "<unk>",
                        AddedToken("<mask>", lstrip=True, special=True, normalized=False)])
    roberta.add_tokens([AddedToken("[NEW]", rstrip=True, normalized=True),
                        AddedToken("NEW]]", normalized=False)])
    roberta.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))

    for name, tokenizer in [("llama3", llama3), ("qwen2", qwen2), ("roberta", roberta)]:
        (out / name).mkdir(parents=True, exist_ok=True)
        tokenizer.save(str(out / name / "tokenizer.json"), pretty=False)  # gpt2's stays pretty
        made[name] = Tokenizer.from_file(str(out / name / "tokenizer.json"))

    (out / "ours").mkdir(parents=True, exist_ok=True)
    subprocess.run([moe_data, "train-tokenizer", "--input", str(train_path), "--vocab-size",
                    str(VOCAB_SIZE), "--output", str(out / "ours" / "tokenizer.json")],
                   check=True, stdout=subprocess.DEVNULL)
    made["ours"] = Tokenizer.from_file(str(out / "ours" / "tokenizer.json"))
    return made


def unicode_oracle(rng):
    """Character classes, case-insensitive contraction letters and NFC, as HF computes them."""
    gpt2 = pre_tokenizers.Split(Regex(GPT2), behavior="isolated")
    llama3 = pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated")

    def whole(splitter, text):  # the probe is one word
        return len(splitter.pre_tokenize_str(text)) == 1

    runs, letters = [], []
    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:
            continue  # surrogates are not characters; a Python str holding one cannot be split
        c = chr(code)
        cls = ("L" if whole(gpt2, f"x{c}y") else "N" if whole(gpt2, f"1{c}1")
               else "O" if whole(gpt2, f".{c}.") else "S")
        if not runs or runs[-1][1] != cls:
            runs.append([code, cls])
        if cls == "L":
            letters.append(c)
    # Probe -> the letters for which it splits off "'" plus the contraction: 's 't 'm 'd, 're 've,
    # 'r(e), 'l(l), '(l)l.
    probes = {"s t m d": "'{}a", "r v": "'{}ea", "e": "'r{}a", "l first": "'{}la",
              "l second": "'l{}a"}
    contractions = {}
    for name, probe in probes.items():
        matched = []
        for c in letters:
            words = [w for w, _ in llama3.pre_tokenize_str(probe.format(c))]
            if len(words) == 2 and words[1] == "a":
                matched.append(ord(c))
        contractions[name] = matched
    return {"classes": runs, "contractions": contractions, "nfc": nfc_pairs(rng)}


def nfc_pairs(rng):
    """[text, NFC of it by HF's normalizer] for the texts of unicode.json's "nfc"."""
    # Marks: non-zero combining classes and second halves of decompositions, chosen with Python's
    # unicodedata (whatever its version: it only picks inputs; HF gives the answers).
    mappings = (unicodedata.decomposition(chr(code)) for code in range(0x110000))
    seconds = {int(d.split()[1], 16) for d in mappings
               if d and not d.startswith("<") and len(d.split()) == 2}
    marks, texts = [], []
    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        c = chr(code)
        decomposed = normalizers.NFD().normalize_str(c)
        if decomposed != c and not 0xAC00 <= code <= 0xD7A3:  # Hangul syllables: sampled below
            texts += [c, decomposed]
        if unicodedata.combining(c) or code in seconds:
            marks.append(c)
            texts += ["a" + c, c]
    jamo = [chr(0x1100 + i) for i in range(19)] + [chr(0x1161 + i) for i in range(21)] + \
           [chr(0x11A8 + i) for i in range(27)] + ["\uac00", "\uac01", "\ud7a3", "x"]
    texts += ["".join(rng.choice(jamo) for _ in range(rng.randint(2, 5))) for _ in range(300)]
    syllables = [chr(rng.randint(0xAC00, 0xD7A3)) for _ in range(200)]
    texts += syllables + [normalizers.NFD().normalize_str(s) for s in syllables]
    bases = ["a", "e", "o", "u", "A", "\u03b1", "\u0391", "\u0438", "\u0915", "\u05d0", "\u0627",
             "\u0e01", "\u1100", "\u3042", " "]
    texts += [rng.choice(bases) + "".join(rng.choice(marks) for _ in range(rng.randint(1, 4)))
              for _ in range(1500)]
    return [[t, normalizers.NFC().normalize_str(t)] for t in texts]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moe-data", default=str(ROOT / "build" / "moe-data"))
    parser.add_argument("--output", default=str(ROOT / "tests" / "fixtures" / "tokenizers"))
    args = parser.parse_args()
    out = pathlib.Path(args.output)
    out.mkdir(parents=True, exist_ok=True)

    rng = random.Random(20240607)
    train_text, held_out = sources(rng)
    train_path = out / "train.txt"
    train_path.write_text(train_text, encoding="utf-8")
    made = build_tokenizers(out, train_path, args.moe_data)

    strings = HAND_WRITTEN + held_out
    ids = {name: [t.encode(s, add_special_tokens=False).ids for s in strings]
           for name, t in made.items()}
    assert ids.pop("gpt2_files") == ids["gpt2"], "vocab.json + merges.txt encode differently"
    merged = without_ignore_merges(made["llama3"])
    assert any(merged.encode(s, add_special_tokens=False).ids != i
               for s, i in zip(strings, ids["llama3"])), "ignore_merges changes no id"
    cases = {"strings": strings, "ids": ids}
    text = json.dumps(cases, separators=(",", ":"))  # ASCII: non-BMP as surrogate pairs
    (out / "cases.json").write_text(text.replace("],[", "],\n[") + "\n")
    oracle = unicode_oracle(random.Random(7))
    (out / "unicode.json").write_text(json.dumps(oracle, separators=(",", ":"), ensure_ascii=False)
                                      + "\n", encoding="utf-8")
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"{len(strings)} strings x {len(ids)} tokenizers; fixtures {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
