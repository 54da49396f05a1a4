"""Penn Treebank: Dictionary, Corpus, batchify, get_batch (real test text when present)."""

import string

import needle as ndl
import numpy as np
import pytest
from conftest import data_dir
from needle.data import Corpus, DataError, DataFileNotFound, Dictionary, batchify, get_batch

PTB = data_dir() / "ptb"
PTB_TEST = PTB / "ptb.test.txt"
needs_ptb = pytest.mark.skipif(not PTB_TEST.is_file(), reason=f"{PTB_TEST} absent (set NEEDLE_DATA_DIR)")


def test_dictionary():
    d = Dictionary()
    assert [d.add_word(w) for w in ["a", "b", "a", "c", "b"]] == [0, 1, 0, 2, 1]
    assert len(d) == 3 and d.idx2word == ["a", "b", "c"] and d.word2idx == {"a": 0, "b": 1, "c": 2}


@needs_ptb
def test_real_test_text():
    corpus = Corpus(PTB, splits=("test",))
    lines = PTB_TEST.read_text().splitlines()
    words = [w for line in lines for w in [*line.split(), "<eos>"]]
    assert len(lines) == 3761 and len(corpus.test) == len(words) == 82430  # PTB's published size
    assert len(corpus.dictionary) == len(set(words)) == 6049
    assert [corpus.dictionary.idx2word[i] for i in corpus.test[:8]] == words[:8]
    assert words[:7] == ["no", "it", "was", "n't", "black", "monday", "<eos>"]
    assert corpus.test[:7] == [0, 1, 2, 3, 4, 5, 6]
    with pytest.raises(DataError, match="the 'train' split was not read"):
        corpus.train  # noqa: B018


@needs_ptb
def test_course_default_needs_the_train_file():
    with pytest.raises(DataFileNotFound, match=r"train.txt or .*ptb.train.txt: no such file"):
        Corpus(PTB)


@needs_ptb
def test_train_then_test_ids_and_max_lines(tmp_path):
    lines = PTB_TEST.read_text().splitlines(keepends=True)
    (tmp_path / "train.txt").write_text("".join(lines[100:300]))
    (tmp_path / "ptb.test.txt").write_text("".join(lines[:100]))
    corpus = Corpus(tmp_path)
    train_words = [w for line in lines[100:300] for w in [*line.split(), "<eos>"]]
    assert [corpus.dictionary.idx2word[i] for i in corpus.train] == train_words
    assert corpus.dictionary.idx2word[:3] == train_words[:3]  # train words get the first ids
    test_words = [w for line in lines[:100] for w in [*line.split(), "<eos>"]]
    assert [corpus.dictionary.idx2word[i] for i in corpus.test] == test_words
    small = Corpus(tmp_path, max_lines=3)
    assert small.train.count(small.dictionary.word2idx["<eos>"]) == 3
    assert len(small.test) == sum(len(line.split()) + 1 for line in lines[:3])


def test_bad_corpus_input(tmp_path):
    (tmp_path / "test.txt").write_bytes(b"fine words\n\xff\xfe broken\n")
    with pytest.raises(DataError, match=r"test.txt: not UTF-8 text \(byte 11"):
        Corpus(tmp_path, splits=("test",))
    with pytest.raises(DataError, match="unknown splits"):
        Corpus(tmp_path, splits=("dev",))
    with pytest.raises(DataError, match="max_lines"):
        Corpus(tmp_path, max_lines=-1, splits=("test",))


def test_batchify_lays_text_out_in_columns():
    letters = list(range(26))  # a..z
    out = batchify(letters, 4, device=None, dtype="float32")
    assert out.shape == (6, 4) and out.dtype == np.float32
    cols = ["".join(string.ascii_lowercase[int(v)] for v in out[:, j]) for j in range(4)]
    assert cols == ["abcdef", "ghijkl", "mnopqr", "stuvwx"]  # y and z are dropped
    assert batchify(letters, 5, None, None).dtype == np.int64
    with pytest.raises(DataError, match="cannot fill one row"):
        batchify(letters[:3], 4, None, None)
    with pytest.raises(DataError, match="batch_size"):
        batchify(letters, 0, None, None)


def test_get_batch(device):
    batches = batchify(list(range(26)), 4, device, "float32")
    x, y = get_batch(batches, 0, 2, device=device)
    assert isinstance(x, ndl.Tensor) and x.device == ndl.device(device) and x.dtype == "float32"
    np.testing.assert_array_equal(x.numpy(), [[0, 6, 12, 18], [1, 7, 13, 19]])  # a g m s / b h n t
    np.testing.assert_array_equal(y.numpy(), [1, 7, 13, 19, 2, 8, 14, 20])  # b h n t c i o u
    x, y = get_batch(batches, 3, 35, device=device, dtype="int64")
    assert x.shape == (2, 4) and y.shape == (8,) and y.dtype == np.int64  # only 2 rows left
    np.testing.assert_array_equal(y.numpy(), batches[4:6].reshape(-1))
    with pytest.raises(DataError, match="leaves no target"):
        get_batch(batches, 5, 2)


@needs_ptb
def test_course_style_batches_on_real_text():
    corpus = Corpus(PTB, max_lines=500, splits=("test",))
    data = batchify(corpus.test, 15, device=ndl.cpu(), dtype="float32")
    bptt = 32
    for i in range(0, len(data) - 1, bptt):
        x, y = get_batch(data, i, bptt)
        seq_len = x.shape[0]
        assert x.shape == (seq_len, 15) and y.shape == (seq_len * 15,) and x.dtype == "float32"
        np.testing.assert_array_equal(y.numpy().reshape(seq_len, 15), data[i + 1:i + 1 + seq_len])
    flat = np.asarray(corpus.test[:len(data) * 15], dtype=np.float32)
    np.testing.assert_array_equal(data.T.reshape(-1), flat)  # columns are contiguous text
