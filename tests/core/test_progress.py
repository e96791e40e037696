"""kiln.core.progress: fractions that only increase, end at 1, and go only to whoever listens."""

from __future__ import annotations

import threading

from kiln.core.progress import Progress, reporting


def test_a_listener_sees_increasing_fractions_of_the_total_ending_at_one() -> None:
    seen: list[float] = []
    with reporting(seen.append):
        work = Progress(8)
    for _ in range(8):
        work.advance()
    work.update(0.5)  # not above the last one: dropped
    work.finish()
    work.finish()  # once
    assert seen == [0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 0.9995, 1.0]


def test_nobody_listens_outside_the_block_or_without_one() -> None:
    seen: list[float] = []
    with reporting(seen.append):
        pass
    quiet = Progress(2)
    quiet.advance(2)
    quiet.finish()
    assert seen == [] and not quiet.active and not quiet.part(0.0, 0.5).active


def test_parts_fill_their_span_and_only_the_last_part_ends_the_whole() -> None:
    seen: list[float] = []
    whole = Progress(listener=seen.append)
    first, second = whole.part(0.0, 0.4, total=2), whole.part(0.4, 1.0, total=3)
    first.advance()
    first.finish()
    for _ in range(3):
        second.advance()
    second.finish()
    assert seen == [0.2, 0.4, 0.6, 0.8, 0.9995, 1.0]


def test_small_steps_are_merged_and_threads_keep_the_order() -> None:
    seen: list[float] = []
    work = Progress(40_000, listener=seen.append)
    threads = [threading.Thread(target=lambda: [work.advance() for _ in range(10_000)]) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    work.finish()
    assert seen == sorted(seen) and len(seen) <= 201 and seen[-1] == 1.0


def test_a_service_called_inside_the_work_fills_its_stage() -> None:
    seen: list[float] = []
    whole = Progress(listener=seen.append)
    whole.update(0.5)
    with reporting(whole.part(0.5, 1.0).listener):
        inner = Progress(4)  # what a nested service makes: it reports into the stage
    for _ in range(4):
        inner.advance()
    inner.finish()
    assert seen == [0.5, 0.625, 0.75, 0.875, 0.9995, 1.0]
    quiet = Progress()
    with reporting(quiet.listener):
        assert not Progress().active, "a stage nobody listens to passes nothing on"
