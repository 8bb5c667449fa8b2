import pytest

from normrl.utils.seeds import parse_seed_text


@pytest.mark.parametrize("text, seeds", [
    ("0", [0]), ("0-3", [0, 1, 2, 3]), ("0,3,5", [0, 3, 5]), ("0-2,7", [0, 1, 2, 7]),
    (" 2 - 4 , 9", [2, 3, 4, 9]), ("5,1", [5, 1]), ("1,1", [1, 1]),
])
def test_seed_text_lists_seeds_in_written_order(text, seeds):
    assert parse_seed_text(text) == seeds


@pytest.mark.parametrize("text", ["", "x", "-1", "1.5", "3-1", "0-", ",", "0,,2", "1-2-3"])
def test_malformed_seed_text_is_a_value_error(text):
    with pytest.raises(ValueError, match="seed"):
        parse_seed_text(text)
