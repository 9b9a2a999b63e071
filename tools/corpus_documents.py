#!/usr/bin/env python3
"""Splits a corpus into one file per document, named so that sorting the names gives the corpus
order. launch/prepare_corpora.sh feeds the files to `moe-data prepare`. Standard library only.

  corpus_documents.py bible KJV_TXT OUT_DIR
      The King James Bible as Debian's bible-kjv prints it (one verse per line, "Ge1:1 In the
      beginning ..."): one document per book (66), lines kept as printed.
  corpus_documents.py austen JANEAUSTENR_DATA_DIR OUT_DIR
      Jane Austen's six novels from Debian's r-cran-janeaustenr, read without R: its data/Rdata.rdb
      is an R lazy-load database (Rdata.rdx: a gzip'd serialized index of (offset, length) per
      object; each object in Rdata.rdb: a 4-byte big-endian length, then a zlib stream of an R
      serialization, XDR format, of a character vector, one element per line of the Project
      Gutenberg text). One document per chapter, a "VOLUME" heading going with the chapter after
      it and the title page with the first chapter.
"""
import gzip
import os
import re
import struct
import sys
import zlib


class RUnserializer:
    """The subset of R's XDR serialization (versions 2 and 3) that janeaustenr's data uses."""

    NIL, SYMBOL, PAIRLIST, CHAR, LOGICAL, INTEGER, REAL, STRING, LIST = 254, 1, 2, 9, 10, 13, 14, 16, 19
    REFERENCE = 255

    def __init__(self, data):
        if data[:2] != b"X\n":
            raise ValueError("not an R XDR serialization")
        self.data, self.at, self.symbols = data, 2, []
        version = self.int()
        self.int()  # the R version that wrote it
        self.int()  # the oldest R version that reads it
        if version == 3:
            length = self.int()
            self.at += length  # the native encoding's name

    def int(self):
        (value,) = struct.unpack_from(">i", self.data, self.at)
        self.at += 4
        return value

    def value(self):
        flags = self.int()
        kind, has_attributes, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if kind == self.NIL:
            return None
        if kind == self.REFERENCE:
            return self.symbols[(flags >> 8) - 1]
        if kind == self.SYMBOL:
            self.symbols.append(self.value())
            return self.symbols[-1]
        if kind == self.PAIRLIST:  # a list of (tag, value), e.g. attributes
            if has_attributes:
                self.value()
            tag = self.value() if has_tag else None
            head = (tag, self.value())
            return [head] + (self.value() or [])
        if kind == self.CHAR:
            length = self.int()
            if length == -1:
                return None  # NA_character_
            text = self.data[self.at:self.at + length]
            self.at += length
            return text.decode("utf-8" if flags & (1 << 3) else "latin-1")
        length = self.int()
        if kind in (self.STRING, self.LIST):
            result = [self.value() for _ in range(length)]
        elif kind in (self.LOGICAL, self.INTEGER):
            result = list(struct.unpack_from(">%di" % length, self.data, self.at))
            self.at += 4 * length
        elif kind == self.REAL:
            result = list(struct.unpack_from(">%dd" % length, self.data, self.at))
            self.at += 8 * length
        else:
            raise ValueError("R object type %d at byte %d is not supported" % (kind, self.at))
        if has_attributes:
            return {"value": result, "attributes": dict(self.value())}
        return result


def austen_novels(data_dir):
    """(name, lines) of every object in the lazy-load database, in its order."""
    with gzip.open(os.path.join(data_dir, "Rdata.rdx")) as index_file:
        index = RUnserializer(index_file.read()).value()
    variables = index["value"][0]
    with open(os.path.join(data_dir, "Rdata.rdb"), "rb") as db:
        database = db.read()
    for (offset, length), name in zip(variables["value"], variables["attributes"]["names"]):
        blob = database[int(offset):int(offset) + int(length)]
        yield name, RUnserializer(zlib.decompress(blob[4:])).value()


CHAPTER = re.compile(r"^(CHAPTER|Chapter) [0-9IVXLC]+\b")
VOLUME = re.compile(r"^VOLUME ")


def chapters(lines):
    """Splits the lines of a novel at chapter headings."""
    documents = [[]]
    for line in lines:
        if CHAPTER.match(line) and any(CHAPTER.match(l) for l in documents[-1]):
            carried = []  # a VOLUME heading (and the blank lines after it) opens the next chapter
            while documents[-1] and (not documents[-1][-1].strip() or VOLUME.match(documents[-1][-1])):
                carried.insert(0, documents[-1].pop())
            documents.append(carried if any(VOLUME.match(l) for l in carried) else [])
        documents[-1].append(line)
    return ["\n".join(d).strip("\n") + "\n" for d in documents]


BOOK = re.compile(r"^([0-9]?[A-Za-z]+)[0-9]+:[0-9]+ ")


def bible_books(path):
    books = []
    with open(path, encoding="utf-8") as text:
        for line in text:
            match = BOOK.match(line)
            if not match:
                raise ValueError("%s: a line that is no verse: %r" % (path, line[:60]))
            if not books or books[-1][0] != match.group(1):
                books.append((match.group(1), []))
            books[-1][1].append(line)
    return [(name, "".join(lines)) for name, lines in books]


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("bible", "austen"):
        sys.exit(__doc__)
    kind, source, out_dir = sys.argv[1:]
    os.makedirs(out_dir, exist_ok=True)
    if kind == "bible":
        documents = bible_books(source)
    else:
        documents = [("%s_%02d" % (novel, c + 1), text) for novel, lines in austen_novels(source)
                     for c, text in enumerate(chapters(lines))]
    for i, (name, text) in enumerate(documents):
        with open(os.path.join(out_dir, "%04d_%s.txt" % (i, name)), "w", encoding="utf-8") as out:
            out.write(text)
    print("%s: %d documents, %d characters" % (kind, len(documents),
                                                sum(len(t) for _, t in documents)))


if __name__ == "__main__":
    main()
