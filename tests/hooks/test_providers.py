"""Each forge's deliveries read into typed events, their signatures checked, and anything a
forge never sends refused with a 400 naming what is wrong."""

from __future__ import annotations

import json

import pytest

from dockyard.hooks import providers
from dockyard.hooks.payloads import BadDelivery, repo_key
from dockyard.models.hooks import OtherEvent, Provider, PullRequestEvent, PushEvent
from tests.hooks import forges
from tests.hooks.forges import Sent

URL = "https://git.example.com/acme/shop.git"
SHA = "9fceb02d0ae598e95dc970b74767f19372d61af8"
SECRET = "s3cret-from-dockyard"


def read(sent: Sent):
    return providers.read(Provider(sent.provider), sent.headers, sent.body)


PUSHES = [
    forges.github("push", forges.github_push(URL, "refs/heads/main", SHA), SECRET),
    forges.gitlab("Push Hook", forges.gitlab_push(URL, "refs/heads/main", SHA), SECRET),
    forges.gitea("push", forges.gitea_push(URL, "refs/heads/main", SHA), SECRET),
    forges.gitea("push", forges.gitea_push(URL, "refs/heads/main", SHA), SECRET, forgejo=True),
    forges.bitbucket("repo:push", forges.bitbucket_push(URL, "main", SHA), SECRET),
]


@pytest.mark.parametrize("sent", PUSHES, ids=["github", "gitlab", "gitea", "forgejo",
                                              "bitbucket"])
def test_a_push_reads_as_the_branch_and_commit_of_the_repository(sent):
    delivery = read(sent)
    assert delivery.delivery_id == sent.delivery
    assert isinstance(delivery.event, PushEvent)
    assert (delivery.event.branch, delivery.event.commit, delivery.event.deleted) == (
        "main", SHA, False)
    assert repo_key(URL) in {repo_key(url) for url in delivery.event.repo_urls}
    assert providers.verify(Provider(sent.provider), sent.headers, sent.body, SECRET)


@pytest.mark.parametrize("sent", PUSHES, ids=["github", "gitlab", "gitea", "forgejo",
                                              "bitbucket"])
def test_another_secret_or_a_changed_body_does_not_verify(sent):
    provider = Provider(sent.provider)
    assert not providers.verify(provider, sent.headers, sent.body, "another-secret")
    if provider is not Provider.GITLAB:  # GitLab sends the token, it signs nothing
        assert not providers.verify(provider, sent.headers, sent.body + b" ", SECRET)
    unsigned = {k: v for k, v in sent.headers.items()
                if "signature" not in k.lower() and "token" not in k.lower()}
    assert not providers.verify(provider, unsigned, sent.body, SECRET)


@pytest.mark.parametrize("sent", [
    forges.github("push", forges.github_push(URL, "refs/tags/v1.0", SHA), SECRET),
    forges.gitlab("Tag Push Hook", forges.gitlab_push(URL, "refs/tags/v1.0", SHA), SECRET),
    forges.gitea("push", forges.gitea_push(URL, "refs/tags/v1.0", SHA), SECRET),
    forges.bitbucket("repo:push", forges.bitbucket_push(URL, "v1.0", SHA, kind="tag"), SECRET),
], ids=["github", "gitlab", "gitea", "bitbucket"])
def test_a_tag_push_names_no_branch(sent):
    event = read(sent).event
    assert isinstance(event, PushEvent)
    assert event.branch == ""


@pytest.mark.parametrize("sent", [
    forges.github("push", forges.github_push(URL, "refs/heads/old", SHA, deleted=True), SECRET),
    forges.gitlab("Push Hook", forges.gitlab_push(URL, "refs/heads/old", SHA, deleted=True),
                  SECRET),
    forges.gitea("push", forges.gitea_push(URL, "refs/heads/old", forges.ZERO), SECRET),
    forges.bitbucket("repo:push", forges.bitbucket_push(URL, "old", SHA, deleted=True), SECRET),
], ids=["github", "gitlab", "gitea", "bitbucket"])
def test_a_deleted_branch_is_a_deletion_without_a_commit(sent):
    event = read(sent).event
    assert isinstance(event, PushEvent)
    assert (event.branch, event.commit, event.deleted) == ("old", "", True)


def _pulls(action_of: dict[str, str], fork: bool = False) -> list[Sent]:
    gh = forges.github_pull(URL, action_of["github"], 7, SHA, "feature",
                            fork_of="https://git.example.com/someone/shop.git" if fork else None)
    return [
        forges.github("pull_request", gh, SECRET),
        forges.gitlab("Merge Request Hook", forges.gitlab_merge(
            URL, action_of["gitlab"], 7, SHA, "feature", from_fork=fork), SECRET),
        forges.gitea("pull_request", forges.gitea_pull(
            URL, action_of["gitea"], 7, SHA, "feature", from_fork=fork), SECRET),
        forges.bitbucket(action_of["bitbucket"], forges.bitbucket_pull(
            URL, 7, SHA, "feature", from_fork=fork), SECRET),
    ]


ACTIONS = {
    "opened": {"github": "opened", "gitlab": "open", "gitea": "opened",
               "bitbucket": "pullrequest:created"},
    "updated": {"github": "synchronize", "gitlab": "update", "gitea": "synchronized",
                "bitbucket": "pullrequest:updated"},
    "closed": {"github": "closed", "gitlab": "merge", "gitea": "closed",
               "bitbucket": "pullrequest:fulfilled"},
}


def test_a_bitbucket_push_of_several_refs_names_each_and_a_link_picks_its_branch():
    other = "1" * 40
    payload = forges.bitbucket_push(URL, "dev", other)
    payload["push"]["changes"] += [
        *forges.bitbucket_push(URL, "old", SHA, deleted=True)["push"]["changes"],
        *forges.bitbucket_push(URL, "main", SHA)["push"]["changes"]]
    event = read(forges.bitbucket("repo:push", payload, SECRET)).event
    assert isinstance(event, PushEvent)
    assert (event.branch, event.commit) == ("dev", other)
    assert [(x.branch, x.commit, x.deleted) for x in event.also] == [
        ("old", "", True), ("main", SHA, False)]
    assert event.of_branch("main").commit == SHA
    assert event.of_branch("dev") is event
    assert event.of_branch("nowhere") is event


@pytest.mark.parametrize("action", ["opened", "updated", "closed"])
def test_pull_requests_map_to_opened_updated_closed(action):
    for sent in _pulls(ACTIONS[action]):
        event = read(sent).event
        assert isinstance(event, PullRequestEvent), sent.provider
        assert (event.number, event.action, event.head_branch, event.base_branch) == (
            7, action, "feature", "main"), sent.provider
        assert SHA.startswith(event.head_commit), sent.provider  # Bitbucket: 12 digits
        assert not event.from_fork, sent.provider
        assert repo_key(URL) in {repo_key(url) for url in event.repo_urls}, sent.provider


def test_a_pull_request_from_a_fork_says_so():
    assert all(read(sent).event.from_fork for sent in _pulls(ACTIONS["opened"], fork=True))


def test_reopened_and_rejected_and_edited():
    reopened = forges.github("pull_request", forges.github_pull(URL, "reopened", 7, SHA, "f"),
                             SECRET)
    rejected = forges.bitbucket("pullrequest:rejected",
                                forges.bitbucket_pull(URL, 7, SHA, "f"), SECRET)
    edited = forges.github("pull_request", forges.github_pull(URL, "edited", 7, SHA, "f"),
                           SECRET)
    assert read(reopened).event.action == "updated"
    assert read(rejected).event.action == "closed"
    assert isinstance(read(edited).event, OtherEvent)


def test_a_ping_is_another_event_naming_the_repository():
    event = read(forges.github("ping", forges.github_ping(URL), SECRET)).event
    assert isinstance(event, OtherEvent)
    assert event.name == "ping"
    assert URL in event.repo_urls


@pytest.mark.parametrize(("body", "fragment"), [
    (b"not json", "not JSON"),
    (b"[1, 2]", "payload is not a JSON object"),
    (json.dumps({"ref": "refs/heads/main"}).encode(), "payload.after"),
    (json.dumps({"ref": 5, "after": SHA}).encode(), "payload.ref"),
    (json.dumps({"ref": "refs/notes/x", "after": SHA}).encode(), "neither a branch nor a tag"),
    (json.dumps({"ref": "refs/heads/main", "after": "--upload-pack=x"}).encode(),
     "not a commit"),
    (b"[" * 100_000, "not JSON"),
])
def test_a_malformed_payload_is_a_400_naming_the_problem(body, fragment):
    sent = forges.github("push", {}, SECRET)
    with pytest.raises(BadDelivery, match=fragment) as caught:
        providers.read(Provider.GITHUB, sent.headers, body)
    assert caught.value.status_code == 400


def test_missing_event_headers_are_a_400():
    sent = PUSHES[0]
    headers = {k: v for k, v in sent.headers.items() if k != "X-GitHub-Delivery"}
    with pytest.raises(BadDelivery, match="x-github-delivery"):
        providers.read(Provider.GITHUB, headers, sent.body)


def test_bitbucket_nested_fields_are_checked():
    payload = forges.bitbucket_push(URL, "main", SHA)
    payload["push"]["changes"][0]["new"]["target"] = "abc"
    with pytest.raises(BadDelivery, match=r"payload.push.changes\[0\].new.target"):
        read(forges.bitbucket("repo:push", payload, SECRET))


@pytest.mark.parametrize("url", [
    "https://github.com/Acme/Shop.git", "https://github.com/acme/shop",
    "https://token@github.com/acme/shop.git/", "ssh://git@github.com:22/acme/shop.git",
    "git@github.com:acme/shop.git", "git://github.com/acme/shop.git",
    "http://github.com:8080/acme/shop",
])
def test_every_url_of_a_repository_has_one_key(url):
    assert repo_key(url) == "github.com/acme/shop"


def test_other_repositories_have_other_keys():
    assert repo_key("https://github.com/acme/shop-api.git") != repo_key(URL)
    assert repo_key("https://gitlab.com/acme/shop.git") != "github.com/acme/shop"
