"""deploy/: the systemd unit, its PostgreSQL drop-in, its production settings and user.

The unit is read as data (its directives and values), checked by `systemd-analyze
verify` and `security --offline` where systemd's tools are installed (they need no
running systemd), and held against deploy/etl.toml: every path the daemon writes must be
one the hardening leaves writable. The PostgreSQL drop-in is verified with the unit, and
keeps the password off the command line and out of the unit: in a credential. The user
comes from the sysusers file, created under a scratch root. MemoryDenyWriteExecute= is
tried for real: the daemon loads and fails files under the kernel's own W^X refusal
(PR_SET_MDWE), which is what systemd asks of it.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from filedrop_etl.config import Settings, contract
from filedrop_etl.daemon.app.worker import build
from filedrop_etl.daemon.warehouse.postgresql.url import PostgresUrl, secrets
from tests.backends import load_settings
from tests.conftest import ROOT, DaemonProcess, as_warehouse, day_table, drop, write_parquet

DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "filedrop-etl.service"
DROP_IN = DEPLOY / "filedrop-etl-postgresql.conf"
# systemd's tools need no running systemd; found by full path, and the tests that use
# them skip where they are not installed.
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or ""
SYSUSERS = shutil.which("systemd-sysusers") or ""
systemd_analyze = pytest.mark.skipif(not SYSTEMD_ANALYZE,
                                     reason="systemd-analyze is not installed")


def unit(text: str | None = None) -> dict[str, dict[str, list[str]]]:
    """Sections, each key with its values in order (a key may repeat; `Key=` resets)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in (UNIT.read_text() if text is None else text).splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        values = current.setdefault(key.strip(), [])
        if value.strip():
            values.append(value.strip())
        else:
            values.clear()
    return sections


def one(key: str, section: str = "Service") -> str:
    [value] = unit()[section][key]
    return value


def shipped_exec() -> str:
    """The console script ExecStart= runs (the venv under the install directory)."""
    return one("ExecStart").split()[0]


def seconds(span: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)", span)
    assert match, f"write {span!r} as Ns or Nmin"
    return int(match[1]) * (60 if match[2] == "min" else 1)


def production_settings() -> Settings:
    return load_settings(config_file=DEPLOY / "etl.toml", environ={})


def test_the_unit_is_a_hardened_notify_service() -> None:
    service = unit()["Service"]
    expected = {
        "Type": "notify", "NotifyAccess": "main", "Restart": "on-failure",
        "KillMode": "mixed", "KillSignal": "SIGTERM", "User": "filedrop-etl",
        "Group": "filedrop-etl", "StateDirectory": "filedrop-etl", "UMask": "0027",
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
        "PrivateTmp": "yes", "PrivateDevices": "yes", "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes", "ProtectControlGroups": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6", "LockPersonality": "yes",
        "RestrictRealtime": "yes", "SystemCallArchitectures": "native",
        "MemoryDenyWriteExecute": "yes",
    }
    assert {key: one(key) for key in expected} == expected
    [command] = service["ExecStart"]
    assert command.split() == [shipped_exec(), "run", "--config", "/etc/filedrop-etl/etl.toml"]
    assert shipped_exec().endswith("/.venv/bin/filedrop-etl")  # what `make install` makes
    # Exits a restart cannot fix (bad configuration: 2, another daemon holds the lock: 3).
    assert one("RestartPreventExitStatus").split() == ["2", "3"]
    # The slowest file (a 5M-row merge, about 10 s here) finishes well within the stop.
    assert seconds(one("TimeoutStopSec")) >= 60
    # The stall, not the ping interval, decides when a stuck worker is restarted.
    watchdog = seconds(one("WatchdogSec"))
    assert 2 <= watchdog <= production_settings().stall_seconds
    # A reload is a SIGHUP (a rescan of the inbox); settings are read once: restart.
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert "CapabilityBoundingSet" in service and service["CapabilityBoundingSet"] == []


def test_every_path_the_daemon_writes_is_left_writable_by_the_hardening() -> None:
    settings = production_settings()
    writable = [Path(p) for p in one("ReadWritePaths").split()]
    state = Path("/var/lib") / one("StateDirectory")
    assert writable == [state]
    assert Path(one("WorkingDirectory")) == state
    paths = {name: getattr(settings, name) for name in (
        "inbox", "work", "processed", "failed", "db_file", "lock_file")}
    outside = {name: str(path) for name, path in paths.items()
               if not any(path.is_relative_to(w) for w in writable)}
    assert outside == {}, "ProtectSystem=strict would lock the daemon out of these"
    assert settings.http is None  # the HTTP server is opt-in


def verify(unit_dir: Path, text: str, drop_in: str | None = None
           ) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` of `text` as filedrop-etl.service (with `drop_in` in its
    .d directory, where verify reads it), run by this venv's own console script (verify
    checks that ExecStart= is executable)."""
    script = Path(sys.executable).with_name("filedrop-etl")
    assert script.exists(), "the console script is not installed: make install"
    unit_dir.mkdir()
    path = unit_dir / "filedrop-etl.service"
    path.write_text(text.replace(shipped_exec(), str(script)))
    if drop_in is not None:
        (unit_dir / "filedrop-etl.service.d").mkdir()
        (unit_dir / "filedrop-etl.service.d" / "postgresql.conf").write_text(drop_in)
    return subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)


def about_our_unit(stderr: str) -> list[str]:
    # Other units of the host may warn (this one's do not, but a host is not ours); every
    # warning about ours names the unit or its file.
    return [line for line in stderr.splitlines() if "filedrop-etl" in line]


@systemd_analyze
def test_systemd_analyze_verify_finds_nothing_to_say_about_the_unit(tmp_path: Path) -> None:
    result = verify(tmp_path / "unit", UNIT.read_text())
    assert result.returncode == 0, result.stderr
    assert about_our_unit(result.stderr) == []
    # The filter above sees a mistake in this unit on this host, so its silence counts.
    broken = verify(tmp_path / "broken", UNIT.read_text().replace("KillMode=mixed",
                                                                  "KillMode=mixd"))
    assert any("mixd" in line for line in about_our_unit(broken.stderr)), broken.stderr


def test_the_postgresql_drop_in_keeps_the_password_in_a_credential() -> None:
    """A password on the command line is every local user's to read (ps); one in the
    unit, every user's too (`systemctl show`). The drop-in puts it in neither."""
    drop_in = unit(DROP_IN.read_text())
    service = drop_in["Service"]
    env = dict(value.partition("=")[::2] for value in service["Environment"])
    assert secrets(env["ETL_DB"]) == [] and PostgresUrl(env["ETL_DB"]).database
    [credential] = service["LoadCredential"]
    name, _, source = credential.partition(":")
    assert env["PGPASSFILE"] == f"%d/{name}"  # the credentials directory, the service's
    assert Path(source).parent == Path("/etc/filedrop-etl")
    # The command line stays the unit's (no --db), and no file of the unit's own holds it.
    assert {"ExecStart", "EnvironmentFile"}.isdisjoint(service)
    assert drop_in["Unit"]["After"] == drop_in["Unit"]["Wants"] == ["network-online.target"]
    # The daemon it starts: on PostgreSQL, its work directory its node's own (so that
    # daemons may share the inbox), and every path it writes under the writable one.
    settings = load_settings(config_file=DEPLOY / "etl.toml", environ={"ETL_DB": env["ETL_DB"]})
    assert settings.shared and settings.sources["db"] == "environment"
    assert settings.work == settings.inbox.with_name(".inbox.work") / settings.node
    [writable] = [Path(p) for p in one("ReadWritePaths").split()]
    assert all(getattr(settings, name).is_relative_to(writable) for name in (
        "inbox", "work", "processed", "failed", "lock_file"))


@systemd_analyze
def test_systemd_analyze_verify_finds_nothing_to_say_about_the_postgresql_drop_in(
        tmp_path: Path) -> None:
    result = verify(tmp_path / "unit", UNIT.read_text(), DROP_IN.read_text())
    assert result.returncode == 0, result.stderr
    assert about_our_unit(result.stderr) == []
    # The drop-in is read: a mistake in it is reported.
    broken = verify(tmp_path / "broken", UNIT.read_text(),
                    DROP_IN.read_text().replace("PGPASSFILE=%d/", "PGPASSFILE=%Q/"))
    assert any("%Q" in line for line in about_our_unit(broken.stderr)), broken.stderr


@systemd_analyze
def test_systemd_analyze_security_rates_the_unit_well_hardened(tmp_path: Path) -> None:
    unit_dir = tmp_path / "unit"
    unit_dir.mkdir()
    path = unit_dir / "filedrop-etl.service"
    path.write_text(UNIT.read_text())
    # 0 (locked down) to 10 (unprotected). 3.2 for this unit on systemd 252; without
    # any one of User=, NoNewPrivileges=, ProtectSystem=strict or PrivateDevices= it is
    # 3.4-3.5 (measured). Another systemd version may weigh them anew: then re-measure.
    result = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=yes", "--man=no",
                             "--threshold=33", str(path)],
                            capture_output=True, text=True, timeout=60, check=False)
    if "--offline" in result.stderr or "unrecognized option" in result.stderr:
        pytest.skip(f"this systemd-analyze cannot rate a unit file: {result.stderr}")
    exposure = re.search(r"Overall exposure level for filedrop-etl.service: (\d+\.\d)",
                         result.stdout)
    assert exposure, result.stdout + result.stderr
    assert result.returncode == 0 and float(exposure[1]) <= 3.3, result.stdout


@pytest.mark.skipif(not SYSUSERS,
                    reason="systemd-sysusers is not installed")
def test_the_sysusers_file_creates_the_units_user_and_group(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    with (DEPLOY / "filedrop-etl.sysusers.conf").open() as conf:
        subprocess.run([SYSUSERS, f"--root={root}", "-"], stdin=conf,
                       capture_output=True, text=True, timeout=60, check=True)
    [user] = [line.split(":") for line in (root / "etc/passwd").read_text().splitlines()]
    [group] = [line.split(":") for line in (root / "etc/group").read_text().splitlines()]
    assert (user[0], group[0]) == (one("User"), one("Group"))
    assert user[3] == group[2]  # the user's primary group is that group
    assert int(user[2]) < 1000  # a system user
    assert user[5] == f"/var/lib/{one('StateDirectory')}"
    assert user[6].endswith("nologin")


# Run the daemon with the kernel's own write-xor-execute refusal (Linux 6.3+; prctl
# PR_SET_MDWE 65, PR_MDWE_REFUSE_EXEC_GAIN 1), which newer systemd uses for
# MemoryDenyWriteExecute= where the kernel has it (older systemd, a seccomp filter that
# refuses the same mmap and mprotect calls): a new mapping can never be
# writable and executable, nor gain execute later. Exec keeps the pid, as the fixture's
# `wrapper` requires, and the setting survives exec.
_MDWE_WRAPPER = """
import ctypes, mmap, os, sys
if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0:
    sys.exit(f"prctl(PR_SET_MDWE) failed: {os.strerror(ctypes.get_errno())}")
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    sys.exit("MDWE is not in force: a writable and executable mapping was made")
except PermissionError:
    pass
os.execv(sys.argv[1], sys.argv[1:])
"""


def mdwe_supported() -> bool:
    # PR_GET_MDWE (66) is negative (EINVAL) where the kernel does not know MDWE.
    probe = subprocess.run([sys.executable, "-c", "import ctypes, sys; "
                            "sys.exit(ctypes.CDLL(None).prctl(66, 0, 0, 0, 0) < 0)"],
                           check=False, timeout=30)
    return probe.returncode == 0


def test_the_daemon_loads_and_fails_files_under_memory_deny_write_execute(
        start_daemon: Callable[..., DaemonProcess]) -> None:
    if not mdwe_supported():
        pytest.skip("the kernel has no PR_SET_MDWE (Linux 6.3+)")
    daemon = start_daemon(wrapper=[sys.executable, "-c", _MDWE_WRAPPER])
    outbox = daemon.settings.db_file.parent / "outbox"
    good = write_parquet(outbox, day_table("2026-02-10", rows=5000), run_date="2026-02-10")
    drop(good, daemon.settings.inbox)
    daemon.wait_for("file_processed", rows=5000)
    bad = outbox / contract.file_name_for("2026-02-11")
    bad.write_bytes(b"not parquet")
    drop(bad, daemon.settings.inbox)
    daemon.wait_for("file_failed")
    assert daemon.stop() == 0
    assert not daemon.matching("unhandled_exception")


def test_the_sample_alert_rules_use_only_metrics_the_daemon_exposes(
        settings: Settings, fresh_db: sqlite3.Connection) -> None:
    """An alert on a misspelt or renamed metric would never fire; nothing else says so."""
    rules = yaml.safe_load((DEPLOY / "prometheus-alerts.yml").read_text(encoding="utf-8"))
    [group] = rules["groups"]
    alerts = {rule["alert"]: rule["expr"] for rule in group["rules"]}
    assert {"EtlDaemonDown", "EtlDaemonUnhealthy", "EtlNoSuccessIn26h",
            "EtlFailedFilesWaiting", "EtlQueueGrowing", "EtlDaemonLost"} <= set(alerts)
    # A node lost on a shared warehouse (issue 24): on the count each daemon exports.
    assert 'etl_daemons{state="lost"}' in alerts["EtlDaemonLost"]
    exposed = {family.name for family in text_string_to_metric_families(
        build(settings, as_warehouse(fresh_db)).metrics.exposition().decode())}
    for name, expr in alerts.items():
        for metric in re.findall(r"\betl_[a-z_]+", expr):
            # Counters are exposed as <name>_total; their family is named without it.
            assert metric.removesuffix("_total") in exposed, f"{name}: {metric} not exposed"


def test_the_units_description_names_both_warehouses() -> None:
    """It said "into SQLite" alone (issue 24)."""
    assert one("Description", "Unit").endswith("into SQLite or PostgreSQL")
