"""`kws-hpc data synth|download|stream`: get clips in the Speech Commands layout."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("data", help="make, download or stream Speech Commands data")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    s = dsub.add_parser("synth", help="write the built-in synthetic corpus (espeak-ng and flite voices)",
                        description="Every word spoken by many synthetic speakers, placed at random in 1-s "
                                    "clips with random gain and background noise, in the Speech Commands layout.")
    s.add_argument("out", help="folder to write (created; an interrupted run is completed on re-run)")
    s.add_argument("--speakers", type=int, default=100, help="distinct voice recipes (default: 100)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--words", default=None, help="comma list of words (default: seed12 + v2-12 + a few others)")
    s.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    s.set_defaults(func=_synth)

    d = dsub.add_parser("download", help="download and extract the official Speech Commands archive",
                        description="Downloads with a progress bar, resumes a partial download, verifies "
                                    "size and checksum, then extracts.")
    d.add_argument("--version", default="v0.02", choices=["v0.01", "v0.02"])
    d.add_argument("--dest", default="data", help="folder for the archive and the extracted data (default: data)")
    d.add_argument("--url", default=None, help="mirror URL of the same archive")
    d.add_argument("--no-extract", action="store_true", help="keep the .tar.gz only (features reads it directly)")
    d.set_defaults(func=_download)

    try:
        from .live import register_stream
    except ImportError:  # the live stage is optional on a slim install
        return
    register_stream(dsub)


def _synth(args) -> int:
    from ..synth import DEFAULT_WORDS, synth_corpus

    words = [w.strip() for w in args.words.split(",") if w.strip()] if args.words else DEFAULT_WORDS
    summary = synth_corpus(args.out, words=words, speakers=args.speakers, seed=args.seed, workers=args.workers)
    print(f"wrote {summary['clips']} clips of {len(words)} words by {summary['speakers']} speakers "
          f"in {summary['seconds']:.1f} s")
    print(args.out)
    return 0


def _download(args) -> int:
    from ..download import download

    path = download(args.version, args.dest, url=args.url, extract=not args.no_extract)
    print(path)
    return 0
