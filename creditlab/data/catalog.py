"""The data sets creditlab knows: their files, checksums and public sources.

Nothing here touches the disk or the network; `store` and `loaders` read this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ClassifierData = Literal["mnist", "fashion_mnist", "digits", "mnist1d"]
"""The labelled data sets a classifier experiment's ``dataset`` field may name."""


@dataclass(frozen=True)
class DataFile:
    """One file of a data set, stored as ``<root>/<data set>/<name>``."""

    name: str
    """File name inside the data set's folder (and on a mirror)."""
    md5: str
    """md5 of the file's bytes."""
    content_md5: str | None = None
    """md5 of the decoded content (the array of a .mat file, the bytes inside a .gz), accepted
    when the file's own bytes differ (a re-saved .mat file, a recompressed .gz)."""
    required: bool = True
    """False for files that only unlock a larger protocol (MNIST's 60k training set)."""
    source_name: str | None = None
    """Name on the default public source when it publishes another format (converted on fetch)."""


@dataclass(frozen=True)
class DatasetSpec:
    """Where a data set comes from and how to check it."""

    name: str
    description: str
    kind: str
    """"bundled" (ships with a package), "generated" (made locally) or "files" (downloaded)."""
    files: tuple[DataFile, ...] = ()
    mirrors: tuple[str, ...] = ()
    """Public base URLs tried in order by `fetch`, serving each file under its
    ``source_name`` if set, else its ``name``; a ``--mirror`` always serves ``name``."""
    protocols: tuple[str, ...] = ()
    optional: bool = False
    """True for a large data set only some experiments read (N-MNIST): `creditlab data verify`
    without a name skips it while none of its files is present."""


# md5 of scikit-learn's bundled digits.csv.gz (unchanged for many releases; checked with 1.9.1),
# and of its decoded (1797, 65) uint8 table, accepted should a release re-compress the file.
DIGITS_CSV_MD5 = "9b335364a7bfd63947c7480a5bd51f2d"
DIGITS_CONTENT_MD5 = "265453a2439934797bb770ce205b6fad"

# md5 of the generated MNIST-1D arrays (see loaders.mnist1d_checksum): labels exactly, inputs
# rounded to 4 decimals as float32, for mnist1d's default arguments (5000 samples, seed 42).
MNIST1D_CHECKSUM = "6c83f986f47e5c4c12b50735f6d49485"

# The official MNIST files (LeCun, Cortes, Burges) with their well-known md5s. The original
# site http://yann.lecun.com/exdb/mnist/ is often unreachable or asks for a login, so, like
# torchvision, try its S3 copy first and fall back to the original.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

# Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): the upstream .gz files and their md5s as Zalando
# publishes them, and the md5 of each decompressed IDX file. Copies recompressed by an OS package
# (Debian's dataset-fashion-mnist) have other .gz bytes but the same decompressed content.
FASHION_MNIST_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)

# Statically binarized MNIST (Larochelle & Murray 2011; Salakhutdinov & Murray 2008 sampling).
# The canonical public copy is Hugo Larochelle's folder, which publishes the three splits as
# .amat text ("0 1 0 ... 0", one image per line) rather than these .mat files; no public host of
# the .mat copies was found. `fetch` therefore downloads the .amat files from there, checks the
# decoded pixels against the content md5 below (computed from the .mat copies), and saves .mat.
# That the .amat pixels equal the .mat copies' (same published splits) could not be checked
# offline; were it false, fetch would stop with a checksum error, never accept other data.
BINARIZED_MNIST_AMAT_SOURCE = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"

# N-MNIST (Orchard et al. 2015): the official archives on Mendeley Data, where tonic downloads them
# (tonic.datasets.NMNIST, same md5s); that host names each file by an id, hence source_name.
# Read by creditlab.data.nmnist (not by `load`): event recordings, binned into spike frames.
NMNIST_MIRRORS = ("https://data.mendeley.com/public-files/datasets/468j46mzdv/files/",)

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="digits",
            description="scikit-learn's 8x8 handwritten digits, 1797 images (bundled)",
            kind="bundled",
            files=(DataFile("digits.csv.gz", DIGITS_CSV_MD5, DIGITS_CONTENT_MD5),),
            protocols=("digits-80/20",),
        ),
        DatasetSpec(
            name="mnist1d",
            description="MNIST-1D, 4000/1000 sequences of length 40 (generated locally)",
            kind="generated",
            protocols=("mnist1d",),
        ),
        DatasetSpec(
            name="mnist",
            description="MNIST 28x28 digits from the official IDX files (10k or 60k train)",
            kind="files",
            files=(
                DataFile(
                    "train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", required=False
                ),
                DataFile(
                    "train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", required=False
                ),
                DataFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
                DataFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
            ),
            mirrors=MNIST_MIRRORS,
            protocols=("mnist10k", "mnist60k"),
        ),
        DatasetSpec(
            name="fashion_mnist",
            description="Fashion-MNIST 28x28 clothing images, 60k train / 10k test (IDX files)",
            kind="files",
            files=(
                DataFile(
                    "train-images-idx3-ubyte.gz",
                    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                    "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                ),
                DataFile(
                    "train-labels-idx1-ubyte.gz",
                    "25c81989df183df01b3e8a0aad5dffbe",
                    "9018921c3c673c538a1fc5bad174d6f9",
                ),
                DataFile(
                    "t10k-images-idx3-ubyte.gz",
                    "bef4ecab320f06d8554ea6380940ec79",
                    "8181f5470baa50b63fa0f6fddb340f0a",
                ),
                DataFile(
                    "t10k-labels-idx1-ubyte.gz",
                    "bb300cfdad3c16e7a12a480ee83cd310",
                    "15d484375f8d13e6eb1aabb0c3f46965",
                ),
            ),
            mirrors=FASHION_MNIST_MIRRORS,
            protocols=("fashion_mnist",),
        ),
        DatasetSpec(
            name="binarized_mnist",
            description="statically binarized MNIST, 50k/10k/10k, no labels (MATLAB files)",
            kind="files",
            files=(
                DataFile(
                    "binarized_mnist_train.mat",
                    "4e26f7a5b466cfcde0fa4876fa4b60a6",
                    "8d4f0427d6c2572b5e9994e08bad66de",
                    source_name="binarized_mnist_train.amat",
                ),
                DataFile(
                    "binarized_mnist_valid.mat",
                    "3c8c0bae400a11eda4c6caf6642d7d34",
                    "3e33becd40c694040e5e6c812e2f4b50",
                    source_name="binarized_mnist_valid.amat",
                ),
                DataFile(
                    "binarized_mnist_test.mat",
                    "3478bd31ef84368bf30234a011d886fa",
                    "fc34623e13bd64fed2f8b61365198339",
                    source_name="binarized_mnist_test.amat",
                ),
            ),
            mirrors=(BINARIZED_MNIST_AMAT_SOURCE,),
            protocols=("binarized_mnist",),
        ),
        DatasetSpec(
            name="nmnist",
            description="N-MNIST event recordings, 60k train / 10k test (official zip archives)",
            kind="files",
            files=(
                DataFile(
                    "train.zip",
                    "20959b8e626244a1b502305a9e6e2031",
                    source_name="39c25547-014b-4137-a934-9d29fa53c7a0/file_downloaded",
                ),
                DataFile(
                    "test.zip",
                    "69ca8762b2fe404d9b9bad1103e97832",
                    source_name="05a4d654-7e03-4c15-bdfa-9bb2bcbea494/file_downloaded",
                ),
            ),
            mirrors=NMNIST_MIRRORS,
            protocols=("nmnist",),
            optional=True,
        ),
    )
}
