"""The publish planner with plain values: what is uploaded, in which order, retired,
swept and invalidated (no S3 here; tests/test_ui_publish.py runs the executor)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from llamaws.builder.manifest import FileEntry, Manifest
from llamaws.builder.publish_plan import (
    MAX_INVALIDATION_PATHS,
    LiveState,
    Phase,
    Retired,
    plan_publish,
)

UI = "/deployments/app/ui"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


JS1, JS2, CSS = "assets/index-Ab12Cd34.js", "assets/index-Zz98Yy76.js", "assets/index-Qq11Rr22.css"


def manifest(**files: str) -> Manifest:
    return Manifest({path: FileEntry.for_content(path, content.encode())
                     for path, content in files.items()})  # fmt: skip


def v1() -> Manifest:
    return manifest(**{JS1: "js one", CSS: "css", "index.html": "<script src=js1>",
                       "robots.txt": "ok", "about/index.html": "about"})  # fmt: skip


def v2() -> Manifest:
    return manifest(**{JS2: "js two", CSS: "css", "index.html": "<script src=js2>",
                       "robots.txt": "ok", "about/index.html": "about"})  # fmt: skip


def live(of: Manifest, *, retired: dict[str, Retired] | None = None) -> LiveState:
    return LiveState(dict(of.files), retired or {}, of.build_id, T0)


def test_first_publish_uploads_hashed_files_first_and_the_root_page_last() -> None:
    plan = plan_publish(v1(), LiveState(), base_path=UI, now=T0)
    assert [u.path for u in plan.uploads] == [
        JS1, CSS, "robots.txt", "about/index.html", "index.html"
    ]  # fmt: skip
    assert [u.phase for u in plan.uploads] == [Phase.HASHED, Phase.HASHED, Phase.OTHER,
                                               Phase.HTML, Phase.HTML]  # fmt: skip
    assert not any(u.replaces for u in plan.uploads)
    assert plan.invalidations == () and plan.retire == () and plan.deletes == ()
    assert plan.bytes_to_upload == v1().total_size


def test_one_changed_asset_uploads_it_and_the_page_and_retires_the_old_one() -> None:
    plan = plan_publish(v2(), live(v1()), base_path=UI, now=T0 + HOUR)
    assert [u.path for u in plan.uploads] == [JS2, "index.html"]
    assert plan.unchanged == ("about/index.html", CSS, "robots.txt")
    assert plan.retire == (JS1,)
    assert plan.state.retired == {JS1: Retired(v1().files[JS1].sha256, T0 + HOUR)}
    assert plan.invalidations == (f"{UI}/index.html",)  # the new asset's URL is new
    assert plan.state.files == v2().files and plan.state.build_id == v2().build_id
    assert plan.previous_build_id == v1().build_id


def test_the_same_build_again_is_a_no_op() -> None:
    plan = plan_publish(v1(), live(v1()), base_path=UI, now=T0)
    assert plan.is_noop and plan.uploads == () and len(plan.unchanged) == 5


def test_retired_files_are_deleted_only_once_the_grace_is_over() -> None:
    retired = {JS1: Retired("x", T0)}
    within = plan_publish(v2(), live(v2(), retired=retired), base_path=UI,
                          now=T0 + HOUR - timedelta(seconds=1))  # fmt: skip
    assert within.deletes == () and JS1 in within.state.retired
    after = plan_publish(v2(), live(v2(), retired=retired), base_path=UI, now=T0 + HOUR)
    assert after.deletes == (JS1,) and JS1 not in after.state.retired
    # Until the sweep is done, the state written at the switch still names it.
    assert JS1 in after.switch_state.retired
    assert after.invalidations == ()  # a hashed URL: nothing cached can change
    zero = plan_publish(v2(), live(v2(), retired=retired), base_path=UI, now=T0,
                        grace=timedelta(0))  # fmt: skip
    assert zero.deletes == (JS1,)


def test_a_deleted_unhashed_file_is_invalidated() -> None:
    retired = {"old.txt": Retired("x", T0)}
    plan = plan_publish(v2(), live(v2(), retired=retired), base_path=UI, now=T0 + 2 * HOUR)
    assert plan.deletes == ("old.txt",) and plan.invalidations == (f"{UI}/old.txt",)


def test_rolling_back_to_a_retired_file_reuses_it() -> None:
    old = v1().files[JS1]
    state = live(v2(), retired={JS1: Retired(old.sha256, T0)})
    plan = plan_publish(v1(), state, base_path=UI, now=T0 + 2 * HOUR)
    assert [u.path for u in plan.uploads] == ["index.html"]
    assert JS1 in plan.unchanged and plan.deletes == ()
    assert plan.retire == (JS2,) and JS1 not in plan.state.retired


def test_what_a_key_really_holds_overrides_the_state() -> None:
    page = v1().files["index.html"]
    plan = plan_publish(v1(), live(v1()), base_path=UI, now=T0,
                        observed={"index.html": "edited by hand", "robots.txt": None})  # fmt: skip
    assert [(u.path, u.replaces) for u in plan.uploads] == [
        ("robots.txt", False),
        ("index.html", True),
    ]
    assert plan.invalidations == (f"{UI}/index.html",)
    ok = plan_publish(v1(), live(v1()), base_path=UI, now=T0,
                      observed={"index.html": page.sha256})  # fmt: skip
    assert ok.uploads == ()


def test_changed_headers_are_uploaded_again() -> None:
    state = live(v1())
    robots = state.files["robots.txt"]
    stale = {**state.files, "robots.txt": FileEntry(robots.sha256, robots.size, "text/plain",
                                                    robots.cache_control)}  # fmt: skip
    plan = plan_publish(v1(), LiveState(stale, {}, "old", T0), base_path=UI, now=T0)
    assert [u.path for u in plan.uploads] == ["robots.txt"]
    assert plan.invalidations == (f"{UI}/robots.txt",)


def test_orphans_of_an_interrupted_publish_are_retired() -> None:
    plan = plan_publish(v1(), live(v1()), base_path=UI, now=T0,
                        orphans={"assets/lost-Kk55Ll66.js": "abc", JS1: "same"})  # fmt: skip
    assert plan.retire == ("assets/lost-Kk55Ll66.js",)
    assert plan.state.retired["assets/lost-Kk55Ll66.js"] == Retired("abc", T0)


def test_many_changed_paths_become_one_wildcard() -> None:
    before = manifest(**{f"page{i}.html": "a" for i in range(MAX_INVALIDATION_PATHS + 1)})
    after = manifest(**{f"page{i}.html": "b" for i in range(MAX_INVALIDATION_PATHS + 1)})
    plan = plan_publish(after, live(before), base_path=UI + "/", now=T0)
    assert plan.invalidations == (f"{UI}/*",)
    few = plan_publish(manifest(**{"a b.html": "2"}), live(manifest(**{"a b.html": "1"})),
                       base_path=UI, now=T0)  # fmt: skip
    assert few.invalidations == (f"{UI}/a%20b.html",)


def test_a_new_directory_index_means_the_function_needs_redeploying() -> None:
    assert not plan_publish(v2(), live(v1()), base_path=UI, now=T0).spa_routes_changed
    more = Manifest({**v1().files, "docs/index.html": FileEntry.for_content("docs/index.html",
                                                                            b"d")})  # fmt: skip
    assert plan_publish(more, live(v1()), base_path=UI, now=T0).spa_routes_changed
    assert not plan_publish(more, LiveState(), base_path=UI, now=T0).spa_routes_changed


def test_live_state_round_trips_through_json() -> None:
    state = plan_publish(v2(), live(v1()), base_path=UI, now=T0).state
    assert LiveState.from_json(state.to_json()) == state
