"""The harnesses' log tail: complete lines only, each once, non-JSON handed back apart."""

from __future__ import annotations

from pathlib import Path

from tools.harness.logtail import LogTail


def test_a_line_counts_once_its_newline_is_written(tmp_path: Path) -> None:
    log = tmp_path / "daemon.log"
    tail = LogTail(log)
    assert tail.read() == ([], [])  # not written yet
    with log.open("ab") as sink:
        sink.write(b'{"event": "daemon_started"}\n{"event": "file_')
        sink.flush()
        assert tail.read() == ([{"event": "daemon_started"}], [])
        sink.write(b'claimed"}\nplain text \xff\n[1]\n\n')
    events, stray = tail.read()
    assert events == [{"event": "file_claimed"}]
    assert stray == ["plain text \ufffd", "[1]"]
    assert tail.read() == ([], [])
