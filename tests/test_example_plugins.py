"""The example plugins users copy first, fed the payloads their senders really publish."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
# GitHub's published push examples (@octokit/webhooks-examples, see tests/data/github).
PUSHES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data" / "github" / "push.json").read_text()
)
SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"


@pytest.fixture
def shipped(make_app):
    """A client for the app with the repository's own plugins/ folder."""
    return make_app(plugins={"dirs": [str(ROOT / "plugins")]}).test_client()


def deliver(client, payload: dict[str, Any], event: str = "push"):
    """POST the payload as GitHub does: JSON body, event name and a fresh delivery id."""
    return client.post(
        "/api/v1/webhook/github_push",
        data=json.dumps(payload),
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": str(uuid.uuid4()),
        },
    )


def summary(response) -> dict[str, Any]:
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]


def test_the_published_examples_are_the_push_shapes_this_file_tests():
    """Guards the test data: tag created, tags deleted, branches created."""
    shapes = [(p["ref"], p["created"], p["deleted"], p["head_commit"] is None) for p in PUSHES]
    assert shapes == [
        ("refs/tags/simple-tag", True, False, False),
        ("refs/tags/simple-tag", False, True, True),
        ("refs/tags/simple-tag", False, True, True),
        ("refs/tags/simple-tag", False, True, True),
        ("refs/heads/master", True, False, False),
        ("refs/heads/master", True, False, False),
        ("refs/tags/simple-tag", False, True, True),
    ]


def test_a_created_tag_is_reported_as_a_tag_not_a_branch(shipped):
    got = summary(deliver(shipped, PUSHES[0]))
    assert got == {
        "repository": "Codertocat/Hello-World",
        "ref": "refs/tags/simple-tag",
        "ref_type": "tag",
        "tag": "simple-tag",
        "created": True,
        "deleted": False,
        "forced": False,
        "commits": 0,
        "head_commit": SHA,
        "pusher": "Codertocat",
    }


@pytest.mark.parametrize("index", [1, 2, 3, 6])
def test_a_deleted_tag_has_no_head_commit_and_no_commits(shipped, index):
    got = summary(deliver(shipped, PUSHES[index]))
    assert got["ref_type"] == "tag" and got["tag"] == "simple-tag" and "branch" not in got
    assert got["deleted"] is True and got["created"] is False
    assert got["head_commit"] is None and got["commits"] == 0


@pytest.mark.parametrize("index", [4, 5])
def test_a_created_branch_with_its_commit(shipped, index):
    got = summary(deliver(shipped, PUSHES[index]))
    assert got["ref_type"] == "branch" and got["branch"] == "master" and "tag" not in got
    assert got["created"] is True and got["commits"] == 1 and got["head_commit"] == SHA


@pytest.mark.parametrize(
    "ref,kind,name",
    [
        (
            "refs/heads/dependabot/npm_and_yarn/lodash-4.17.21",
            "branch",
            "dependabot/npm_and_yarn/lodash-4.17.21",
        ),
        ("refs/heads/feature/login", "branch", "feature/login"),
        ("refs/tags/v1.2.0", "tag", "v1.2.0"),
        ("refs/tags/release/2024-06", "tag", "release/2024-06"),
    ],
)
def test_names_with_slashes_are_kept_whole(shipped, ref, kind, name):
    """The published branch push, sent to the refs the examples do not cover."""
    payload = copy.deepcopy(PUSHES[4]) | {"ref": ref}
    got = summary(deliver(shipped, payload))
    assert got.get(kind) == name and got["ref_type"] == kind and got["ref"] == ref


def test_a_force_push_says_so(shipped):
    """The published branch push, as GitHub sends it after `git push --force`."""
    payload = copy.deepcopy(PUSHES[4]) | {"created": False, "forced": True, "before": "f" * 40}
    got = summary(deliver(shipped, payload))
    assert got["forced"] is True and got["created"] is False and got["branch"] == "master"


def test_other_github_events_are_answered_not_misread_as_pushes(shipped):
    """GitHub's first delivery to a new webhook is a ping: it must not fail the hook."""
    got = summary(deliver(shipped, {"zen": "Design for failure.", "hook_id": 1}, event="ping"))
    assert got == {"event": "ping", "ignored": True}


def test_the_readme_curl_example_without_github_headers(shipped):
    body = {"ref": "refs/heads/main", "repository": {"full_name": "acme/app"}, "commits": [{}, {}]}
    response = shipped.post("/api/v1/webhook/github_push", json=body)
    got = summary(response)
    assert got["repository"] == "acme/app" and got["branch"] == "main" and got["commits"] == 2


@pytest.mark.parametrize(
    "change,message",
    [
        ({"ref": None}, "ref must be a full git ref such as refs/heads/main"),
        ({"ref": "master"}, "ref must be a full git ref such as refs/heads/main"),
        ({"commits": "3"}, "commits must be a list"),
    ],
)
def test_a_payload_that_is_not_a_push_is_a_validation_error(shipped, change, message):
    response = deliver(shipped, copy.deepcopy(PUSHES[4]) | change)
    assert response.status_code == 500
    body = response.get_json()
    assert body["error_type"] == "validation_error" and message in body["message"]
