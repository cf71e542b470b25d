"""The `rtgenre` command: parse, call the library, print. No logic of its own."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path

import click
import numpy as np

from . import __version__, api
from .audio import FileSource, Source
from .batch import BatchSettings, run_batch
from .capture import Capture, input_devices, select_device
from .config import DEFAULT_CONTROL, DEFAULT_WEB_PORT, LyricsSection, StreamSection, bounds
from .errors import RtgenreError
from .feed import DEFAULT_ENDPOINT, Publisher, keygen, proxy, request, subscribe
from .lyrics import LyricModel, lyrics_beside, read_lyrics
from .messages import TOO_SHORT, Eos, parse, schema_text
from .messages import Window as WindowMessage
from .model import DEFAULT_MODEL, Bundle, Classifier, ModelError, check_hop, is_shipped, load_bundle, named_models
from .osc import OscOutput
from .pipeline import StreamPipeline, StreamSettings, run_source
from .view import LiveView
from .windows import MIN_INPUT_S

REALTIME_BLOCK_S = 0.02  # small blocks keep hop-to-publish latency low when paced
FAST_BLOCK_S = 5.0  # large blocks batch many windows into one inference call


class FiniteRange(click.FloatRange):
    """A FloatRange that also refuses NaN, which compares false with both bounds and so slips through."""

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        if rv != rv:
            self.fail(f"{value!r} is not a number in the range {self._describe_range()}.", param, ctx)
        return rv


CONFIG_PLACES = (Path.home() / ".config" / "rtgenre" / "config.yaml", Path("/etc/rtgenre/config.yaml"))  # the units'
WEIGHT = FiniteRange(*bounds(LyricsSection, "weight"))  # the config's ranges: one definition for config and CLI
WINDOW = FiniteRange(*bounds(StreamSection, "window"))
HOP = FiniteRange(*bounds(StreamSection, "hop"))


class Main(click.Group):
    """Turns expected failures into one line on stderr and exit code 1, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RtgenreError as e:
            click.echo(f"rtgenre: error: {e}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("rtgenre: interrupted", err=True)
            sys.exit(130)
        except Terminated:
            click.echo("rtgenre: terminated", err=True)
            sys.exit(143)


@click.group(cls=Main)
@click.version_option(__version__, prog_name="rtgenre")
@click.option("-v", "--verbose", is_flag=True, help="Log progress and the inference provider to stderr.")
def main(verbose: bool) -> None:
    """Real-time music genre classification, published over ZeroMQ."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="rtgenre: %(message)s")


def model_options(f):
    f = click.option(
        "--model",
        "model_spec",
        metavar="NAME|DIR",
        help=f"A shipped model by name (see `rtgenre models`) or a bundle directory (default: {DEFAULT_MODEL.name}).",
    )(f)
    f = click.option("--window", "window_s", type=WINDOW, help="Window length in seconds (default: the model's).")(f)
    f = click.option("--hop", "hop_s", type=HOP, help="Seconds between windows (default: the model's).")(f)
    f = click.option(
        "--provider",
        type=click.Choice(["auto", "cpu", "cuda"]),
        default="auto",
        show_default=True,
        help="ONNX Runtime execution provider: auto uses CUDA when it really loads, cuda fails without it.",
    )(f)
    f = click.option(
        "--require-gpu", is_flag=True, help="Fail unless the CUDA provider is active (= --provider cuda)."
    )(f)
    return f


def model_from_options(model_spec: str | None, provider: str, require_gpu: bool, window_s: float | None,
                       hop_s: float | None) -> api.Model:  # fmt: skip
    """The model the options name (``api.load_model``, the one loader); options that contradict each other are
    usage errors before any work. ``--provider`` is the device the user asks for (auto, cpu or cuda):
    ``--device`` names listen's capture device."""
    if require_gpu and provider == "cpu":
        raise click.UsageError("--require-gpu contradicts --provider cpu")
    model = api.load_model(model_spec, "cuda" if require_gpu else provider)
    window = model.bundle.meta.window_s if window_s is None else window_s
    if hop_s is not None:
        try:
            check_hop(hop_s, window)
        except ModelError as e:
            raise click.UsageError(f"--{e}") from None
    return model


def json_mode(as_json: bool) -> bool:
    return as_json or not sys.stdout.isatty()


def print_json(msg: dict) -> None:
    click.echo(json.dumps(msg, separators=(",", ":")))


def feed_options(f):
    f = click.option("--endpoint", default=DEFAULT_ENDPOINT, show_default=True, help="ZeroMQ PUB endpoint to bind.")(f)
    f = click.option("--osc", multiple=True, metavar="udp://HOST:PORT",
                     help="Also send Open Sound Control to this target (repeatable).")(f)  # fmt: skip
    bare = f"127.0.0.1:{DEFAULT_WEB_PORT}"
    f = click.option("--web", "web_at", is_flag=False, flag_value=bare, metavar="[ADDR:]PORT",
                     help=f"Serve the live page ({bare} when given bare).")(f)  # fmt: skip
    f = click.option("--stream", "stream_id", default="default", show_default=True, help="Stream id (genre.<id>).")(f)
    f = click.option("--json", "as_json", is_flag=True, help="JSON lines (the default when stdout is not a terminal).")(
        f
    )
    return f


def publish_stream(
    source: Source, bundle: Bundle, clf: Classifier, settings: StreamSettings, endpoint: str, as_json: bool,
    title: str, realtime: bool, wait_s: float = 0.0, lyrics: np.ndarray | None = None, osc: tuple[str, ...] = (),
    web_at: str | None = None,
) -> dict:  # fmt: skip
    """One source through the pipeline onto the feed (and OSC targets, the web page), shown as JSON lines or the
    live view."""
    publisher = Publisher(endpoint)
    page = None
    try:
        pipeline = StreamPipeline(bundle, settings, publisher, clf.provider)
        pipeline.lyrics = lyrics
        if osc:
            pipeline.outputs.append(OscOutput(osc, bundle.meta.labels).send)
        if web_at:
            from . import web  # here: its HTTP server is not every command's start-up

            hub = web.Hub()
            pipeline.outputs.append(hub.send)
            model = api.Model(bundle, clf)
            page = web.WebServer(*web.parse_address(web_at), hub, lambda path: web.upload_result(model, path), 100.0)
            click.echo(f"rtgenre: live page on http://{page.address}:{page.port}/", err=True)
        if wait_s > 0 and not publisher.wait_for_subscriber(wait_s):
            click.echo(f"rtgenre: no subscriber after {wait_s:g} s, publishing anyway", err=True)
        view = LiveView(title, bundle.meta.labels, source.info.duration_s)
        if not json_mode(as_json):  # the live view: say where the feed is and how to read it
            click.echo(f"rtgenre: publishing on {publisher.endpoint}; to follow it elsewhere: "
                       f"rtgenre subscribe --endpoint {publisher.endpoint}", err=True)  # fmt: skip
        pipeline.outputs.append(print_json if json_mode(as_json) else view.update)
        previous = signal.getsignal(signal.SIGTERM)
        if previous == signal.SIG_DFL:  # `listen` stops its capture on SIGTERM itself and ends normally
            signal.signal(signal.SIGTERM, _terminated)
        try:
            return run_source(source, pipeline, clf, realtime=realtime)
        except Terminated:
            pipeline.end("terminated")
            raise
        except KeyboardInterrupt:
            pipeline.end("interrupted")
            raise
        except RtgenreError as e:  # the source failed mid-way: subscribers hear why, then the user does
            pipeline.end(f"error: {e}")
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)
    finally:
        publisher.close()
        if page is not None:
            page.close()


class Terminated(BaseException):
    """SIGTERM: a stream ends with an end-of-stream message, a batch keeps what finished; the command exits 143.

    Not an ``Exception``, like ``KeyboardInterrupt``: a handler for a task's failure (a lost Dask worker) must
    not swallow it and carry on."""


def _terminated(*_) -> None:
    raise Terminated


@main.command(short_help="Stream a file like a live source and publish its genre.")
@click.argument("file", type=click.Path(path_type=str))
@click.option("--fast", is_flag=True, help="As fast as the machine goes instead of real time.")
@click.option("--wait", "wait_s", type=float, default=0.0, help="Wait up to this many seconds for a subscriber first.")
@click.option(
    "--lyrics",
    "lyrics_path",
    type=click.Path(path_type=str),
    help="The song's lyrics (.txt or .lrc); FILE's own .txt/.lrc is used when there is one.",
)
@click.option("--no-lyrics", is_flag=True, help="Ignore lyrics even if a .txt/.lrc sits next to FILE.")
@click.option(
    "--lyrics-weight",
    default=LyricsSection.weight,
    show_default=True,
    type=WEIGHT,
    help="0 ignores lyrics, 1 trusts them fully.",
)
@feed_options
@model_options
def replay(file, fast, wait_s, lyrics_path, no_lyrics, lyrics_weight, endpoint, osc, web_at, stream_id, as_json,
           model_spec, window_s, hop_s, provider, require_gpu):  # fmt: skip
    """Stream FILE through the pipeline like a live source and publish genre estimates."""
    model = model_from_options(model_spec, provider, require_gpu, window_s, hop_s)
    bundle, clf = model.bundle, model.classifier
    source = FileSource(file, bundle.meta.frontend.sample_rate, FAST_BLOCK_S if fast else REALTIME_BLOCK_S)
    settings = StreamSettings(id=stream_id, window=window_s, hop=hop_s)
    lyrics = None if no_lyrics else lyrics_path or lyrics_beside(file)
    evidence = None
    if lyrics is not None:
        evidence = LyricModel().evidence(read_lyrics(lyrics), bundle.meta.labels, lyrics_weight)
        logging.getLogger(__name__).info("fusing lyrics from %s", lyrics)
    eos = publish_stream(source, bundle, clf, settings, endpoint, as_json, Path(file).name, not fast, wait_s, evidence,
                         osc, web_at)  # fmt: skip
    report_verdict(file, eos["verdict"], as_json=json_mode(as_json))


@main.command(short_help="Classify a capture device live and publish the genre.")
@click.option("--device", "device_spec", default="mic", show_default=True,
              help="mic (the default input), a device index, or part of a device name.")  # fmt: skip
@click.option("--duration", "duration_s", type=float, help="Stop after this many seconds (default: until stopped).")
@feed_options
@model_options
def listen(device_spec, duration_s, endpoint, osc, web_at, stream_id, as_json, model_spec, window_s, hop_s, provider,
           require_gpu):  # fmt: skip
    """Classify live input from a capture device and publish genre estimates."""
    model = model_from_options(model_spec, provider, require_gpu, window_s, hop_s)
    bundle, clf = model.bundle, model.classifier
    device = select_device(device_spec)
    capture = Capture(device, bundle.meta.frontend.sample_rate)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: capture.stop())
    if duration_s:
        timer = threading.Timer(duration_s, capture.stop)
        timer.daemon = True  # an early error must not leave the process waiting for it
        timer.start()
    logging.getLogger(__name__).info("capturing from %s (%s, %g Hz)", device.name, device.hostapi, capture.rate)
    settings = StreamSettings(id=stream_id, window=window_s, hop=hop_s)
    eos = publish_stream(capture, bundle, clf, settings, endpoint, as_json, device.name, realtime=False, osc=osc,
                         web_at=web_at)  # fmt: skip
    v = eos["verdict"]
    if not json_mode(as_json):
        click.echo(f"{device.name}: {v['genre'] or 'no genre (silence)'} over {v['windows']} windows")


@main.command(short_help="Run the daemon: every configured stream on one model.")
@click.option("--config", "config_path", type=click.Path(path_type=Path), envvar="RTGENRE_CONFIG",
              help="The daemon's YAML config (default: $RTGENRE_CONFIG, else the first of "
                   f"{', '.join(map(str, CONFIG_PLACES))} that exists).")  # fmt: skip
def serve(config_path):
    """Run the daemon: every stream in the config on one model, published on one feed."""
    from .daemon import Daemon

    if config_path is None:
        config_path = next((p for p in CONFIG_PLACES if p.is_file()), None)
        if config_path is None:
            raise click.UsageError(
                f"no config: pass --config FILE or set RTGENRE_CONFIG (none in {', '.join(map(str, CONFIG_PLACES))})"
            )

    logging.getLogger().setLevel(logging.INFO)  # a service's log (the journal) wants its provider and reloads
    sys.exit(Daemon(config_path).run())


@main.command(short_help="Ask a running daemon for its streams and figures.")
@click.option("--endpoint", default=DEFAULT_CONTROL, show_default=True, help="The daemon's control endpoint.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw status as JSON.")
@click.option("--timeout", "timeout_s", default=2.0, show_default=True, help="Seconds to wait for an answer.")
def status(endpoint, as_json, timeout_s):
    """Ask a running daemon for its streams, provider, overflows, drops and latency."""
    reply = request(endpoint, {"cmd": "status"}, timeout_s)
    if as_json or not sys.stdout.isatty():
        print_json(reply)
        return
    feed = reply["feed"]
    click.echo(
        f"model {reply['model']} on {reply['provider']}, up {reply['uptime_s']:.0f} s, "
        f"feed {feed['endpoint']}: {feed['sent']} sent, {feed['subscribers']} subscribers"
    )
    for sid, s in reply["streams"].items():
        top = s.get("smoothed_top") or "–"
        click.echo(
            f"  {sid:<16} {s['state']:<9} {top:<10} windows {s['windows']:<7} "
            f"overruns {s['audio_overruns']}  skipped {s.get('skipped_windows', 0)}  p99 {s['latency_ms_p99']} ms  "
            f"{s.get('error') or ''}"
        )


@main.command(name="lyrics", short_help="Tell a daemon the lyrics a live stream plays now.")
@click.argument("lyrics_file", required=False, type=click.Path(path_type=str))
@click.option("--stream", "stream_id", required=True, help="The daemon stream the lyrics belong to.")
@click.option("--clear", is_flag=True, help="Forget the stream's lyrics (the next song has none yet).")
@click.option("--weight", type=WEIGHT, help="0 ignores lyrics, 1 trusts them fully (default: the config's).")
@click.option("--endpoint", default=DEFAULT_CONTROL, show_default=True, help="The daemon's control endpoint.")
def lyrics_cmd(lyrics_file, stream_id, clear, weight, endpoint):
    """Tell a running daemon the lyrics of what a live stream plays now (.txt or .lrc)."""
    if clear == bool(lyrics_file):
        raise RtgenreError("give either a lyrics file or --clear")
    body = {"cmd": "lyrics", "stream": stream_id, "text": None if clear else read_lyrics(lyrics_file)}
    if weight is not None:
        body["weight"] = weight
    reply = request(endpoint, body, 30.0)
    if "error" in reply:
        raise RtgenreError(reply["error"])
    click.echo(f"stream {reply['stream']}: lyrics {'on' if reply['lyrics'] else 'off'}")


@main.command(name="keygen", short_help="Write a CurveZMQ key pair for the feed.")
@click.argument("directory", type=click.Path(path_type=str))
@click.option("--name", default="rtgenre", show_default=True, help="Base name of the key files.")
def keygen_cmd(directory, name):
    """Write a CurveZMQ key pair: NAME.key (public, share it) and NAME.key_secret (keep it)."""
    public, secret = keygen(directory, name)
    click.echo(f"public key: {public}\nsecret key: {secret}")


@main.command(name="proxy", short_help="Gather the feeds of several daemons into one.")
@click.option(
    "--frontend",
    default="tcp://127.0.0.1:5558",
    show_default=True,
    help="Where daemons publish to (their feed.connect).",
)
@click.option("--backend", default="tcp://127.0.0.1:5559", show_default=True, help="Where subscribers connect.")
def proxy_cmd(frontend, backend):
    """Gather the feeds of several daemons into one (a ZeroMQ XSUB/XPUB proxy)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    proxy(frontend, backend)


@main.command(short_help="List the input devices capture can use.")
def devices():
    """List the input devices live capture can use."""
    for d in input_devices():
        click.echo(f"{d.index:3d}  {d.name}  [{d.hostapi}]  {d.channels} ch  {d.default_rate:g} Hz")


@main.command(short_help="One genre verdict per file.")
# readable=False: an unreadable file is reported with the others, not refused as a usage error for all
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=str, readable=False))
@click.option("--json", "as_json", is_flag=True, help="JSON lines (the default when stdout is not a terminal).")
@model_options
def classify(files, as_json, model_spec, window_s, hop_s, provider, require_gpu):
    """One genre verdict per file; a bad file is reported and the others still processed."""
    model = model_from_options(model_spec, provider, require_gpu, window_s, hop_s)
    failed = 0
    for file in files:
        try:
            result = model.classify(file, window_s=window_s, hop_s=hop_s)
            report_verdict(file, result.to_json(), as_json=json_mode(as_json))
        except RtgenreError as e:
            click.echo(f"rtgenre: error: {e}", err=True)
            failed += 1
    if failed:
        sys.exit(1)


def report_verdict(file: str, verdict: dict, as_json: bool) -> None:
    if verdict["state"] == TOO_SHORT:
        raise RtgenreError(f"{file}: shorter than {MIN_INPUT_S:g} s of audio: no genre")
    if verdict["genre"] is None:
        raise RtgenreError(f"{file}: silent throughout (every window below the silence gate): no genre")
    if as_json:
        print_json({"file": file, **verdict})
    else:
        padded = " (shorter than one window: looped)" if verdict["padded"] else ""
        click.echo(f"{file}: {verdict['genre']} {verdict['confidence']:.0%} over {verdict['windows']} windows{padded}")


@main.command(name="batch", short_help="Classify a library on a Dask cluster into Parquet.")
@click.argument("inputs", nargs=-1, required=True, metavar="ROOT_OR_LIST...")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Parquet dataset directory (one row per file; resumed when it exists).")  # fmt: skip
@click.option("--scheduler", metavar="tcp://HOST:8786", help="A running Dask scheduler (default: a local cluster).")
@click.option("--workers", type=click.IntRange(1), help="Worker processes of the local cluster (default: all cores).")
@click.option("--model", "model_spec", metavar="NAME|DIR", help="A shipped model by name or a bundle directory.")
@click.option("--window", "window_s", type=WINDOW, help="Window length in seconds (default: the model's).")
@click.option("--hop", "hop_s", type=HOP, help="Seconds between windows (default: the model's).")
@click.option("--chunk", default=BatchSettings.chunk, show_default=True, type=click.IntRange(1), help="Files per task.")
def batch_cmd(inputs, out, scheduler, workers, model_spec, window_s, hop_s, chunk):
    """Classify a music library (directories, files, or .txt lists of paths) on a Dask cluster into Parquet."""
    settings = BatchSettings(model=model_spec, window_s=window_s, hop_s=hop_s, chunk=chunk)
    previous = signal.signal(signal.SIGTERM, _terminated)  # SIGTERM, like Ctrl-C, keeps what finished
    try:
        counts = run_batch(inputs, out, settings, scheduler, workers)
    finally:
        signal.signal(signal.SIGTERM, previous)
    click.echo(f"rtgenre: {counts['found']} files: {counts['classified']} classified ({counts['errors']} with "
               f"errors), {counts['skipped']} already in {out}", err=True)  # fmt: skip


@main.command(name="schema", short_help="Print the JSON Schema of the feed's messages.")
def schema_cmd():
    """Print the JSON Schema of the feed's messages (for clients in other languages)."""
    click.echo(schema_text(), nl=False)


@main.command(name="models", short_help="List the shipped models and your own: accuracy, cost, size.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per model.")
def models_cmd(as_json):
    """The models `--model NAME` takes: the shipped ones and your own (in $RTGENRE_MODELS, default
    ~/.local/share/rtgenre/models): name, honest accuracy, cost per window and size."""
    rows, broken = [], 0
    for path in named_models().values():
        try:
            rows.append(model_summary(load_bundle(path)))
        except ModelError as e:  # one broken bundle of the user's does not hide the others; the exit code says so
            click.echo(f"rtgenre: error: {e}", err=True)
            broken += 1
    if as_json:
        for row in rows:
            print_json(row)
    else:
        models_table(rows)
    if broken:
        sys.exit(1)


def models_table(rows: list[dict]) -> None:
    click.echo(f"{'name':<18} {'labels':<7} {'CV track acc':<22} {'valid':<6} {'ms/window':<10} {'× real time':<12} "
               "size")  # fmt: skip
    for r in rows:
        cv = f"{r['cv_track_acc']:.3f} ({r['cv_folds']})" if r["cv_track_acc"] is not None else "–"
        valid = f"{r['valid_track_acc']:.3f}" if r["valid_track_acc"] is not None else "–"
        ms = f"{r['ms_per_window']:.2f}" if r["ms_per_window"] else "–"
        rt = f"{500 / r['ms_per_window']:.0f}×" if r["ms_per_window"] else "–"
        star = " (default)" if r["default"] else "" if r["shipped"] else f" (yours: {r['path']})"
        click.echo(f"{r['name']:<18} {r['labels']:<7} {cv:<22} {valid:<6} {ms:<10} {rt:<12} {r['size_mb']:.1f} MB"
                   f"{star}")  # fmt: skip


def model_summary(bundle: Bundle) -> dict:
    """What `rtgenre models` says of a bundle, from its own meta.json (figures measured when it was made)."""
    extra = bundle.meta.extra
    validation = extra.get("validation", {})
    folds = extra.get("training", {}).get("folds_by") or "track"
    size = sum(f.stat().st_size for f in bundle.path.iterdir() if f.is_file())
    return {
        "name": bundle.meta.name if bundle.path.name == bundle.meta.name else bundle.path.name,
        "default": bundle.path.resolve() == DEFAULT_MODEL.resolve(),
        "shipped": is_shipped(bundle.path),
        "labels": len(bundle.meta.labels),
        "cv_track_acc": validation.get("cv", {}).get("track_acc"),
        "cv_folds": f"{folds} folds",
        "valid_track_acc": validation.get("valid", {}).get("track_acc"),
        "ms_per_window": extra.get("ms_per_window"),
        "size_mb": size / 1e6,
        "path": str(bundle.path),
    }


@main.command(name="subscribe", short_help="Print a genre feed as it arrives.")
@click.option("--endpoint", default=DEFAULT_ENDPOINT, show_default=True, help="ZeroMQ endpoint to connect to.")
@click.option("--stream", "stream_id", help="Only this stream id (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print each message as a JSON line.")
@click.option("--timeout", "timeout_s", type=float, help="Exit after this many seconds without a message.")
@click.option("--until-eos", is_flag=True, help="Exit after the first end-of-stream message.")
@click.option("--server-key", type=click.Path(), help="CurveZMQ: the publisher's public key file.")
@click.option("--client-key", type=click.Path(), help="CurveZMQ: this subscriber's secret key file.")
def subscribe_cmd(endpoint, stream_id, as_json, timeout_s, until_eos, server_key, client_key):
    """Print a genre feed as it arrives."""
    for stream, msg in subscribe(endpoint, stream_id, timeout_s, server_key, client_key):
        if json_mode(as_json):
            print_json(msg)
        else:
            click.echo(describe(stream, msg))
        if until_eos and msg["type"] == Eos.type:
            return


def describe(stream: str, msg: dict) -> str:
    body = parse(msg)
    if isinstance(body, Eos):
        v = body.verdict
        return f"[{stream}] end of stream ({body.reason}): {v.genre or 'no genre'} {v.confidence:.0%}"
    where = f"{body.t1:7.1f} s" if isinstance(body, WindowMessage) else "heartbeat"
    return f"[{stream}] {where}  {body.smoothed_top or '–':<10} {body.smoothed_confidence:4.0%}  {body.state}"
