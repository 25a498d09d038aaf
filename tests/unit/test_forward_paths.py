"""Forward authentication decides only on paths every router reads alike (issue 7, finding 1).

Each refused URI below is one a router could route as another path than the
one decided: the review's requests first, then one of each rule.
"""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyledger.domain.paths import AmbiguousPath, decided_path

#: What the review sent through nginx (all admitted before the fix).
DEMONSTRATED = [
    "/v1/users/1%2F..%2F..%2Flogs",
    "/v1/admin/delete-all%2F..%2F..%2Flogs",
    "/v1/events;jsessionid=x",
    "/v1/%2565vents",
    "/v1/events%2e",
    "/v1/events%20",
]

REFUSED = {
    # percent-encoded separators and dots, any case
    "/v1/a%2fb": "percent-encoded '/'",
    "/v1/a%2Fb": "percent-encoded '/'",
    "/v1/a%5cb": "percent-encoded '\\'",
    "/v1/a%5Cb": "percent-encoded '\\'",
    "/v1/a%25b": "percent-encoded '%'",
    "/v1/a%3fb": "percent-encoded '?'",
    "/v1/a%3Fb": "percent-encoded '?'",
    "/v1/a%23b": "percent-encoded '#'",
    "/v1/%2e%2e/logs": "percent-encoded '.'",
    "/v1/%2E": "percent-encoded '.'",
    # a '%' that is not an encoding
    "/v1/50%": "'%' that does not start",
    "/v1/%4": "'%' that does not start",
    "/v1/%zzlogs": "'%' that does not start",
    "/v1/%%32%46": "'%' that does not start",
    # path parameters, raw or decoded
    "/v1/events;x": "';'",
    "/v1/events%3bx": "';'",
    "/v1/events%3B": "';'",
    # dot segments and segments ending in a dot or a space
    "/v1/./events": "dot segment",
    "/v1/x/../events": "dot segment",
    "/v1/events/.": "dot segment",
    "/..": "dot segment",
    "/v1/events.": "ending in a dot or a space",
    "/v1/events./x": "ending in a dot or a space",
    "/v1/events%20/x": "ending in a dot or a space",
    "/v1/events%09": "control",
    # control characters, raw or decoded, and backslashes
    "/v1/events\x00": "control",
    "/v1/events%00": "control",
    "/v1/events%0d%0aX-User-Role:%20Owner": "control",
    "/v1/events\r\nX: 1": "control",
    "/v1/events%7f": "control",
    "/v1/events%c2%85": "control",
    "/v1/events%e2%80%ae": "unprintable",  # right-to-left override
    "/v1\\events": "backslash",
    # fragments, non-ASCII and bytes that are not UTF-8
    "/v1/logs#/../events": "'#'",
    "/v1/logs?x=1#y": "'#'",
    "/v1/caf\xc3\xa9": "non-ASCII",
    "/v1/events%ff": "not UTF-8",
    # not a path at all
    "v1/events": "not an absolute path",
    "http://evil.example/v1/events": "not an absolute path",
    "": "not an absolute path",
}


@pytest.mark.parametrize("uri", DEMONSTRATED)
def test_every_demonstrated_uri_is_refused(uri: str) -> None:
    with pytest.raises(AmbiguousPath):
        decided_path(uri)


@pytest.mark.parametrize("uri", REFUSED, ids=[repr(u) for u in REFUSED])
def test_an_ambiguous_uri_is_refused_naming_the_problem(uri: str) -> None:
    with pytest.raises(AmbiguousPath, match=re.escape(REFUSED[uri])):
        decided_path(uri)


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("/v1/events", "/v1/events"),
        ("/v1/events/", "/v1/events/"),
        ("/v1/Events", "/v1/Events"),  # the role policy compares case-insensitively
        ("/v1/%65vents", "/v1/events"),  # decoded once
        ("/v1/%C5%BFvent", "/v1/\u017fvent"),  # UTF-8 decoded (the policy folds it)
        ("/orders/42?expand=items", "/orders/42"),
        ("/orders?next=/v1/../events;x%2F", "/orders"),  # the query is not the path
        ("/v1//events", "/v1//events"),  # the role policy treats empty segments
        ("/v1/a%20b", "/v1/a b"),
        ("/v1/.well-known/x", "/v1/.well-known/x"),
        ("/v1/archive.tar.gz", "/v1/archive.tar.gz"),
        ("/", "/"),
    ],
)
def test_a_plain_uri_is_decided_on_its_path_decoded_once(uri: str, path: str) -> None:
    assert decided_path(uri) == path


SAFE = string.ascii_letters + string.digits + "-_~!$&'()*+,=:@"


@given(st.lists(st.text(alphabet=SAFE, min_size=1, max_size=12), max_size=6))
def test_plain_segments_are_decided_as_they_are(segments: list[str]) -> None:
    uri = "/" + "/".join(segments)
    assert decided_path(uri) == uri


@given(st.text(max_size=40))
def test_a_decided_path_never_holds_what_routers_disagree_on(text: str) -> None:
    try:
        path = decided_path("/" + text)
    except AmbiguousPath:
        return
    assert path.startswith("/") and path.isprintable()
    assert not {";", "\\", "#"} & set(path)
    for segment in path.split("/")[1:]:
        assert segment not in {".", ".."}
        assert not segment.endswith((".", " "))


@given(st.sampled_from(sorted({"2f", "5c", "25", "3f", "23", "2e"})), st.text(SAFE, max_size=8))
def test_a_refused_encoding_is_refused_in_any_case_anywhere(code: str, tail: str) -> None:
    for spelled in {code, code.upper(), code[0].upper() + code[1], code[0] + code[1].upper()}:
        with pytest.raises(AmbiguousPath):
            decided_path(f"/v1/x%{spelled}{tail}")
