"""`cep run` and `cep record`: the live commands' options and handlers (see docs/live.md)."""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import TYPE_CHECKING

from cep.adapters.mqtt_defaults import CONNECT_TIMEOUT, INBOX_SIZE, PASSWORD_ENV
from cep.cli.common import (
    EXIT_OK,
    EXIT_PROBLEM,
    CliError,
    at_least_one,
    load_runnable_rules,
    output_sink,
    report,
    time_zone,
    view_only_notice,
)
from cep.runtime.limits import MAX_PARTITION_INSTANCES

if TYPE_CHECKING:  # the live runner and the view (rich) load only when a command needs them
    from cep.adapters.live import LiveStats
    from cep.adapters.mqtt import BrokerSettings
    from cep.adapters.state import StateFolder
    from cep.checks.loader import LoadedRules
    from cep.runtime.engine import Engine
    from cep.tools.view import InputStatus, TerminalView

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str) -> float:
    """`90`, `90s`, `15m`, `2h`, `1d`, `250ms` → seconds; ValueError otherwise."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration: use a number with s, m, h or d "
                         f"(e.g. 90s, 15m, 2h)")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"{text!r}: a duration must be greater than 0")
    return seconds


def _add_broker_options(parser: argparse.ArgumentParser, default_status: str | None) -> None:
    broker = parser.add_argument_group("broker connection")
    broker.add_argument("--broker", default="mqtt://localhost:1883", metavar="URL",
                        help="mqtt://[user[:pass]@]host[:port] or mqtts://... (default "
                             f"mqtt://localhost:1883); a user without a password reads it "
                             f"from ${PASSWORD_ENV}")
    broker.add_argument("--tls", action="store_true", help="use TLS (implied by mqtts://)")
    broker.add_argument("--ca-file", metavar="FILE",
                        help="CA certificates to check the broker with (default: the system's)")
    broker.add_argument("--cert", metavar="FILE", help="client certificate (PEM)")
    broker.add_argument("--key", metavar="FILE", help="client certificate's private key (PEM)")
    broker.add_argument("--insecure", action="store_true",
                        help="TLS without checking the broker's host name (testing only)")
    broker.add_argument("--client-id", metavar="ID",
                        help="MQTT client id (cep run: default cep-HOST-XXXXXXXX, the same "
                             "for the same state folder or rule files; cep record: default "
                             "cep-record-HOST-PID, cep-record-HOST with --persistent)")
    broker.add_argument("--keepalive", type=int, default=60, metavar="S",
                        help="keepalive interval in seconds (default 60)")
    broker.add_argument("--persistent", action="store_true",
                        help="keep the broker session across disconnections (clean session "
                             "off): QoS 1/2 messages sent while cep was away are delivered "
                             "when it reconnects (cep run does so unless --clean-session)")
    broker.add_argument("--sub-qos", type=int, choices=(0, 1, 2), default=1,
                        help="QoS of the subscriptions (default 1)")
    broker.add_argument("--reconnect-min", type=float, default=1.0, metavar="S",
                        help="first reconnect delay in seconds, doubled per failure (default 1)")
    broker.add_argument("--reconnect-max", type=float, default=60.0, metavar="S",
                        help="longest reconnect delay in seconds (default 60)")
    broker.add_argument("--connect-timeout", type=float, default=CONNECT_TIMEOUT, metavar="S",
                        help=f"seconds for the TCP connection and TLS handshake, and then for "
                             f"the broker's CONNACK (default {CONNECT_TIMEOUT:g}); a server "
                             f"that sends none is not an MQTT broker")
    broker.add_argument("--inbox", type=at_least_one, default=INBOX_SIZE, metavar="N",
                        help=f"messages received and waiting for the engine, at most (default "
                             f"{INBOX_SIZE:,}); when full, cep reads no more from the broker "
                             f"until there is room")
    if default_status is not None:
        broker.add_argument("--status-topic", default=default_status, metavar="TOPIC",
                            help=f"retained availability topic: online while connected, "
                                 f"offline as last will and on exit (default {default_status})")
        broker.add_argument("--no-status", action="store_true",
                            help="publish no availability topic")
    broker.add_argument("--retained", action="store_true",
                        help="take retained messages delivered on subscribe as events "
                             "(default: ignored, they are device state, not new events)")


def add_live_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser(
        "run", help="run the rules live against an MQTT broker",
        description="Run the rules live: subscribe to every topic the rules declare, publish "
                    "every action back to the broker, and write the output lines (fired "
                    "complex events and actions) to stdout or --out as they happen. Events are "
                    "timestamped on arrival (or TIMESTAMP FROM); timers fire on the real "
                    "clock. Reconnects with backoff after a lost connection; gives up (exit "
                    "1) when another client with the same client id keeps taking the "
                    "connection. SIGINT or SIGTERM stops cleanly (exit 0). Connection news and "
                    "the summary go to stderr.")
    run.add_argument("rules", nargs="+", metavar="RULES", help="rule files or folders")
    _add_broker_options(run, default_status="cep/status")
    run.add_argument("--tz", metavar="ZONE",
                     help="time zone for clock times and output timestamps (overrides "
                          "SET TIMEZONE)")
    run.add_argument("--out", metavar="FILE",
                     help="write output lines to FILE (default stdout; with --view, output "
                          "lines go only to --out)")
    run.add_argument("--contexts", action="store_true",
                     help="also write context-start / context-end lines")
    run.add_argument("--max-instances", type=at_least_one, default=MAX_PARTITION_INSTANCES,
                     metavar="N",
                     help="most live instances (keys) per partitioned context or keyed "
                          "interval; events of further keys are refused and reported "
                          f"(default {MAX_PARTITION_INSTANCES:,})")
    run.add_argument("--record", metavar="FILE",
                     help="also write every message the engine takes to a trace FILE, with "
                          "the timestamps it used and the run's start and stop: replaying "
                          "it gives the same outputs")
    state = run.add_argument_group("state (surviving restarts)")
    state.add_argument("--state", metavar="DIR",
                       help="keep the engine's state (context instances, partial matches, "
                            "timers, windows) in DIR and restore it at start-up (default: "
                            "$XDG_STATE_HOME/cep/CLIENT-ID)")
    state.add_argument("--fresh", action="store_true",
                       help="start with an empty state (what the state folder held is lost)")
    state.add_argument("--no-state", action="store_true",
                       help="keep no state: a restart starts empty and forgets what was "
                            "waiting (partial matches, open contexts, timers)")
    state.add_argument("--clean-session", action="store_true",
                       help="a clean broker session (default: a persistent one, so that "
                            "the broker keeps QoS 1/2 messages for cep while it is away)")
    run.add_argument("--view", action="store_true",
                     help="show the live terminal view (on the terminal; output lines then go "
                          "only to --out)")
    run.add_argument("--ha-discovery", nargs="?", const="homeassistant", metavar="PREFIX",
                     help="announce the rules and contexts to Home Assistant by MQTT "
                          "discovery under PREFIX (default homeassistant): one device, a "
                          "binary sensor per context, a device trigger and a last-fired "
                          "sensor per rule (the default client id is then cep-HOST)")
    run.set_defaults(handler=run_live)

    rec = commands.add_parser(
        "record", help="record bus traffic into a trace file",
        description="Record the messages on one or more topic filters into a trace file that "
                    "`cep replay` reads, each line flushed as it is written, between a "
                    "start mark and (when it stops cleanly) a stop mark. Stops after "
                    "--duration, or on SIGINT/SIGTERM (exit 0).")
    rec.add_argument("--topic", action="append", required=True, metavar="FILTER",
                     help="MQTT topic filter to record (+ and # allowed); repeat for several")
    rec.add_argument("--out", required=True, metavar="FILE", help="the trace file to write")
    rec.add_argument("--duration", metavar="D",
                     help="stop after D (e.g. 90s, 15m, 2h, 1d; a bare number is seconds)")
    rec.add_argument("--tz", metavar="ZONE", default="UTC",
                     help="time zone of the timestamps written (default UTC)")
    _add_broker_options(rec, default_status=None)
    rec.set_defaults(handler=run_record)


def _settings(args: argparse.Namespace, status_topic: str | None,
              client_prefix: str, persistent: bool | None = None) -> BrokerSettings:
    from cep.adapters.mqtt import BrokerSettings

    return BrokerSettings.from_url(
        args.broker, tls=args.tls, ca_file=args.ca_file, cert_file=args.cert,
        key_file=args.key, insecure=args.insecure, client_id=args.client_id,
        keepalive=args.keepalive,
        persistent=args.persistent if persistent is None else persistent,
        subscribe_qos=args.sub_qos,
        status_topic=status_topic, reconnect_min=args.reconnect_min,
        reconnect_max=args.reconnect_max, connect_timeout=args.connect_timeout,
        default_client_id=client_prefix)


def _gave_up(reason: str) -> CliError:
    """The connection stopped reconnecting (after TAKEOVER_GIVE_UP connections taken by
    another client with the same client id, or a failed network thread): exit status 1."""
    return CliError(reason, EXIT_PROBLEM)


def run_live(args: argparse.Namespace) -> int:
    from cep.adapters.live import LiveRunner
    from cep.adapters.mqtt import SettingsError
    from cep.adapters.state import StateError
    from cep.adapters.trace import TraceWriter
    from cep.runtime.engine import EngineError
    from cep.runtime.output import OutputWriter, finish_output, format_ts

    loaded = load_runnable_rules(args.rules)
    tz = time_zone(args.tz, loaded)
    if args.ha_discovery is not None:
        _check_ha_discovery(args)
    if args.no_state and (args.state or args.fresh):
        raise CliError("--no-state keeps no state folder: it goes with neither --state nor "
                       "--fresh")
    if not args.client_id:
        args.client_id = _default_client_id(args)
    persistent = args.persistent or not args.clean_session
    if args.persistent and args.clean_session:
        raise CliError("--persistent and --clean-session contradict each other (a live run "
                       "is persistent unless --clean-session)")
    try:
        settings = _settings(args, None if args.no_status else args.status_topic, "cep",
                             persistent)
    except SettingsError as exc:
        raise CliError(str(exc)) from exc
    state = None if args.no_state else _state_folder(args, loaded, settings.client_id)
    view = None
    if args.view:
        from cep.tools.view import TerminalView

        view = TerminalView(mode="live", source=settings.display)
        if not view.available:
            raise CliError("--view needs a terminal (stderr is not one and there is no /dev/tty)")
    try:
        out = open(args.out, "a" if state is not None and not args.fresh else "w",
                   encoding="utf-8") if args.out else None
        # with a state folder a recording goes on across restarts (cut back to the last
        # checkpoint, then continued: adapters/durable.py)
        recorder = TraceWriter.open(args.record, tz, append=state is not None and
                                    not args.fresh) if args.record else None
    except OSError as exc:
        raise CliError(f"cannot write {exc.filename}: {exc.strerror}") from exc
    # With --view the terminal is the view's: output lines go to --out only.
    sink_file = out if out is not None else (None if view is not None else sys.stdout)
    writer = OutputWriter(sink_file, tz, flush=True) if sink_file is not None else None
    sink = output_sink(writer, view)
    ticker = LiveViewTicker(view) if view is not None else None
    try:
        runner = LiveRunner(loaded.catalog, settings, sink, tz, report=report,
                            take_retained=args.retained, show_contexts=args.contexts,
                            record=recorder, ticker=ticker, inbox_size=args.inbox,
                            max_instances=args.max_instances, ha_discovery=args.ha_discovery,
                            state=state, fresh=args.fresh)
    except EngineError as exc:
        raise CliError(str(exc), EXIT_PROBLEM) from exc
    started = time.monotonic()
    if view is not None:
        view.start()
    report(f"running {len(loaded.catalog.rules)} rules on {settings.display}")
    try:
        stats = runner.run()
    except StateError as exc:
        if view is not None:
            view.stop()
        raise CliError(str(exc), EXIT_PROBLEM) from exc
    except BaseException:
        if view is not None:
            view.stop()  # the terminal back in order before the error is shown
        raise
    finally:
        try:
            finish_output(out if out is not None else sys.stdout)
        finally:
            if recorder is not None:
                recorder.close()
    summary = stats.summary(time.monotonic() - started)
    if view is not None and ticker is not None:
        ticker.finish(runner.engine, stats)
        view.stop(summary)
        notice = view_only_notice(stats.outputs) if out is None else None
        if notice:
            print(notice, file=sys.stderr)
    else:
        print(summary, file=sys.stderr)
    if runner.reporter.total:
        print(f"cep: {runner.reporter.summary()}", file=sys.stderr)
    for line in stats.path_lines():
        print(f"cep: {line}", file=sys.stderr)
    if args.record and stats.stopped_at is not None:
        # The recording holds the run's start and stop: replaying it needs nothing more.
        print(f"cep: recorded {stats.recorded} message{'s' if stats.recorded != 1 else ''} "
              f"into {args.record} ({format_ts(stats.started, tz)} to "
              f"{format_ts(stats.stopped_at, tz)}); replaying it with these rules gives the "
              f"same output lines", file=sys.stderr)
    if stats.gave_up is not None:
        raise _gave_up(stats.gave_up)
    return EXIT_OK


def _default_client_id(args: argparse.Namespace) -> str:
    """The same id for the same state folder (or, by default, the same rule files) on the
    same host: a restarted run finds its broker session, and its state, again."""
    import os

    from cep.adapters.state import stable_client_id

    if args.state:
        anchor = os.path.abspath(args.state)
    else:
        anchor = "\0".join(sorted(os.path.abspath(p) for p in args.rules))
    return stable_client_id(anchor)


def _state_folder(args: argparse.Namespace, loaded: LoadedRules,
                  client_id: str) -> StateFolder:
    from pathlib import Path

    from cep.adapters.state import StateFolder, default_state_dir, rules_fingerprint

    path = Path(args.state) if args.state else default_state_dir(client_id)
    return StateFolder(path, rules_fingerprint(loaded.files),
                       [str(p) for p in args.rules])


def _check_ha_discovery(args: argparse.Namespace) -> None:
    """A usable discovery prefix; and a client id that stays the same from run to run (the
    Home Assistant device and its entities are known by it): cep-HOST unless given."""
    import os
    import socket

    from cep.adapters.ha_discovery import DEFAULT_PREFIX, prefix_problem

    prefix = args.ha_discovery
    problem = prefix_problem(prefix)
    if prefix != DEFAULT_PREFIX and os.path.exists(prefix):  # a rule path taken for PREFIX
        problem = ("that is a file or folder: put --ha-discovery after the rule files, or "
                   "give the prefix as --ha-discovery=PREFIX")
    if problem is not None:
        raise CliError(f"--ha-discovery {prefix!r}: {problem}")
    if not args.client_id:
        args.client_id = f"cep-{socket.gethostname()}"


class LiveViewTicker:
    """Feeds the terminal view from the live runner: LiveStats → the view's InputStatus."""

    def __init__(self, view: TerminalView) -> None:
        self.view = view

    def status(self, stats: LiveStats, finished: bool = False) -> InputStatus:
        from cep.tools.view import InputStatus

        return InputStatus(
            mode="live", source=stats.broker, connection=stats.state,
            reconnects=stats.reconnects, messages=stats.messages, events=stats.events,
            events_by_type=tuple(sorted(stats.events_by_type.items())),
            bad_messages=stats.bad_messages, unmatched=stats.unmatched,
            unmatched_topics=tuple(sorted(stats.unmatched_topics.items())), finished=finished,
            missing_paths=tuple(stats.path_lines()),
            backlog=stats.inbox, backlog_peak=stats.inbox_peak, backlog_limit=stats.inbox_size,
            problem=stats.problem, state=stats.restored_brief)

    def tick(self, engine: Engine, stats: LiveStats) -> None:
        self.view.tick(engine, lambda: self.status(stats))

    def finish(self, engine: Engine, stats: LiveStats) -> None:
        self.view.tick(engine, self.status(stats, finished=True), force=True)


def run_record(args: argparse.Namespace) -> int:
    from cep.adapters.live import record
    from cep.adapters.mqtt import SettingsError
    from cep.adapters.trace import TraceWriter

    tz = time_zone(args.tz)
    duration = None
    if args.duration is not None:
        try:
            duration = parse_duration(args.duration)
        except ValueError as exc:
            raise CliError(f"--duration: {exc}") from exc
    for topic in args.topic:
        problem = _filter_problem(topic)
        if problem:
            raise CliError(f"--topic {topic!r}: {problem}")
    try:
        settings = _settings(args, None, "cep-record")
    except SettingsError as exc:
        raise CliError(str(exc)) from exc
    try:
        writer = TraceWriter.open(args.out, tz)
    except OSError as exc:
        raise CliError(f"cannot write {exc.filename}: {exc.strerror}") from exc
    started = time.monotonic()
    report(f"recording {', '.join(args.topic)} from {settings.display} into {args.out}"
            + (f" for {args.duration}" if duration else ""))
    with writer:
        stats = record(settings, args.topic, writer, report, duration=duration,
                       take_retained=args.retained, inbox_size=args.inbox)
    print(stats.summary(args.out, time.monotonic() - started), file=sys.stderr)
    if stats.gave_up is not None:
        raise _gave_up(stats.gave_up)
    return EXIT_OK


def _filter_problem(topic: str) -> str | None:
    """Why an MQTT topic filter is invalid (None when it is fine)."""
    if not topic:
        return "an empty topic filter"
    levels = topic.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return "'#' must be a whole level, and the last one"
        if "+" in level and level != "+":
            return "'+' must be a whole level"
    return None
