#!/usr/bin/env python3
"""Seeds of the harnesses whose inputs are not files agon reads as they
are (tools/fuzz.sh copies the experiment and sweep files for the others):

  idx        small real IDX pairs in fuzz_idx's input format (8 bytes of
             options, the image file, the label file), made from the first
             images of Debian's dataset-fashion-mnist files, or from a fixed
             pattern where the package is not installed;
  hdf5_data  descriptions of small valid files for fuzz_hdf5_data (the
             fuzzer grows the invalid ones from them);
  log        edit scripts for fuzz_log, starting with the empty one (every
             real log as it was written).

    python3 tests/fuzz/seeds.py HARNESS OUT_DIR
"""
import gzip
import os
import struct
import sys

REAL = "/usr/share/datasets/fashion-mnist"
N = 20


def first(split):
    """The first N images (784 bytes each) and labels of a split."""
    images = os.path.join(REAL, split + "-images-idx3-ubyte.gz")
    labels = os.path.join(REAL, split + "-labels-idx1-ubyte.gz")
    if os.path.exists(images) and os.path.exists(labels):
        with gzip.open(images) as f:
            f.read(16)
            pixels = f.read(N * 784)
        with gzip.open(labels) as f:
            f.read(8)
            ids = f.read(N)
        return pixels, ids
    pixels = bytes((13 * i + p) % 256 for i in range(N) for p in range(784))
    return pixels, bytes(i % 10 for i in range(N))


def idx(pixels, ids, n):
    images = struct.pack(">IIII", 0x803, n, 28, 28) + pixels[: n * 784]
    labels = struct.pack(">II", 0x801, n) + ids[:n]
    return images, labels


def seed(flags, images, labels, mask=0, limit=0):
    return struct.pack(">BHBI", flags, mask, limit, len(images)) + images + labels


def idx_seeds():
    train, test = first("train"), first("t10k")
    return {
        # the harness gzips both files
        "train_gz": seed(3, *idx(*train, N)),
        # plain files, which zlib reads through
        "train_plain": seed(0, *idx(*train, N)),
        # the bytes of real gzip streams, written as they are
        "train_gzip_bytes": seed(0, *(gzip.compress(b, mtime=0) for b in idx(*train, N))),
        "test_gz": seed(3 | 4, *idx(*test, 5)),
        # classes 0 and 3, limit 4, stacked
        "classes_limit_stacked": seed(3 | 8 | 16 | 32, *idx(*train, N), mask=0b1001, limit=4),
        "one_image": seed(3, *idx(*train, 1)),
    }


# fuzz_hdf5_data: options, the dataset path, the labels path (with option
# bit 2), n_classes, the truncation point, the number of objects, then per
# object its path, kind and target, and for a dataset its type, rank, dims,
# layout, values mode and attribute count.  Paths: 0 /x, 1 /y, 2 /labels,
# 3 /g/x, 4 /g/labels, 5 /g; types: 0 uint8, 6 int64, 8 float32, 9 float64.
def dataset(path, type_, dims, layout=0, mode=2):
    return bytes([path, 0, 0, type_, len(dims)] + list(dims) + [layout, mode, 0])


def hdf5_data_seeds():
    return {
        "float32_points": bytes([0, 0, 0, 0, 0, 1]) + dataset(0, 8, [4, 2]),
        "uint8_images_labels": bytes([4, 3, 4, 0, 0, 0, 2])
        + dataset(3, 0, [3, 1, 2, 2], layout=1)
        + dataset(4, 6, [3]),
        "n_classes": bytes([4 | 8, 0, 2, 9, 0, 0, 2]) + dataset(0, 9, [5]) + dataset(2, 6, [5]),
        # /x and /labels as external links into other.h5
        "external_links": bytes([4, 0, 2, 0, 0, 0, 2, 0, 6, 0, 1, 0, 2, 6, 0, 1, 1]),
        # /y a soft link to /x
        "soft_link": bytes([0, 1, 0, 0, 0, 2]) + dataset(0, 9, [2, 3]) + bytes([1, 5, 0]),
        "truncated": bytes([16, 0, 0, 0x80, 0, 1]) + dataset(0, 8, [4, 2]),
    }


# fuzz_log: the log to edit, the commands to run, then edits (see
# fuzz_log.c); an empty script runs every command on the log as written.
def log_seeds():
    return {
        "as_written_%d" % base: bytes([base, 0xFF]) for base in range(3)
    }


def main():
    harness, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    seeds = {"idx": idx_seeds, "hdf5_data": hdf5_data_seeds, "log": log_seeds}[harness]()
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


main()
