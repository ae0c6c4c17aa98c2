"""dwq.quant.precision: a precision set's repeats across spellings, a string given for a list, the short
form of a normalized precision, and the spellings a user types with spaces."""
import pytest

from dwq.quant.precision import normalize_precision, normalize_set, parse_precision, precision_list, user_precision


@pytest.mark.parametrize("ps", [[4, "4"], [4, (4, 4)], ["4w8a", (4, 8)], [None, "fp"], ["8", [8, 8], None]])
def test_a_set_repeating_a_precision_in_another_spelling_is_refused(ps):
    with pytest.raises(ValueError, match="must not repeat"):
        normalize_set(ps, "precisions")


def test_a_set_keeps_its_order_and_normalizes_each_entry():
    assert normalize_set(["fp", 4, "4w8a", (8, 4)]) == (None, (4, 4), (4, 8), (8, 4))


@pytest.mark.parametrize("bad", ["48", "4", "fp", 4, None])
def test_a_string_or_a_lone_precision_is_no_list(bad):
    """list("48") is ["4", "8"]: the set [4, 8], silently."""
    with pytest.raises(ValueError, match=r"cands must be a list of precisions such as \[4, 8, None\]"):
        precision_list(bad, "cands")
    with pytest.raises(ValueError, match="cands must be a list of precisions"):
        normalize_set(bad, "cands")
    assert precision_list((4, "8"), "cands") == [4, "8"]


@pytest.mark.parametrize("p, short", [(None, None), ((4, 4), 4), ((4, 8), (4, 8)), ((8, 4), (8, 4)), ((16, 16), 16)])
def test_user_precision_is_the_short_form(p, short):
    assert user_precision(p) == short
    assert normalize_precision(short) == p


@pytest.mark.parametrize("text, value", [(" 4 ", 4), ("\t4w8a\n", (4, 8)), (" FP ", None), (" w4a8", (4, 8))])
def test_a_spelling_with_spaces_around_it_is_read(text, value):
    """A value read from a file or a quoted list ("4, 8" split on the comma) keeps its spaces."""
    assert parse_precision(text) == value


@pytest.mark.parametrize("pair", [(None, 8), (4, None), (None, None)])
def test_a_pair_with_none_says_that_full_precision_is_the_whole_precision(pair):
    """check_bits's message offered "or None for full precision" or named only w_bits: neither says that a
    pair does not take None."""
    with pytest.raises(ValueError, match=r"takes two ints in 2\.\.16; full precision is None \(or 'fp'\) for the "
                                         r"whole precision"):
        normalize_precision(pair)
