"""`kws-hpc data synth|download|stream`: get clips in the Speech Commands layout, or a scored test stream."""

from __future__ import annotations

from kws_hpc.config import SYNTH_TAKES

STREAM = ("Clips from a Speech Commands layout folder (or archive) with gaps over a quiet background, plus "
          "FILE.tsv: onset/offset (the estimated speech onset and end in the stream, s), word, kind "
          "(keyword|other|noise), clip_start, source. The same corpus and seed give the same file.")


def register(sub) -> None:
    p = sub.add_parser("data", help="make, download or stream Speech Commands data")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    s = dsub.add_parser("synth", help="write the built-in synthetic corpus (espeak-ng and flite voices)",
                        description="Every word spoken by many synthetic speakers, placed at random in 1-s "
                                    "clips with random gain and background noise, in the Speech Commands layout.")
    s.add_argument("out", help="folder to write (created; an interrupted run is completed on re-run)")
    s.add_argument("--speakers", type=int, default=100, help="distinct voice recipes (default: 100)")
    s.add_argument("--takes", type=int, default=SYNTH_TAKES,
                   help="times each speaker says each word, pitch and speed jittered (default: 3)")
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

    t = dsub.add_parser("stream", description=STREAM,
                        help="write a long WAV of keywords, other words and noise, with its truth")
    t.add_argument("--corpus", required=True,
                   help="Speech Commands folder or .tar.gz (e.g. from kws-hpc data synth DIR)")
    t.add_argument("--out", required=True, metavar="FILE.wav", help="WAV to write (truth: FILE.tsv)")
    t.add_argument("--minutes", type=float, default=1.0, help="length (default: 1)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--keywords", default=None,
                   help="comma list (default: the store's keywords with --store, else the seed12 words)")
    t.add_argument("--store", default=None, help="feature store whose clips.tsv says which clip is in which split")
    t.add_argument("--split", default=None, choices=["train", "val", "test"],
                   help="only this split's speakers (the honest choice is test)")
    t.add_argument("--keyword-share", type=float, default=0.6, help="share of events that are keywords (0.6)")
    t.add_argument("--noise-share", type=float, default=0.1,
                   help="share of events that are noise bursts (0.1); the rest are other words")
    t.set_defaults(func=_stream)


def _words(text):
    return [w.strip() for w in text.split(",") if w.strip()] if text else None


def _synth(args) -> int:
    from kws_hpc.data.synth import DEFAULT_WORDS, synth_corpus

    words = _words(args.words) or DEFAULT_WORDS
    summary = synth_corpus(args.out, words=words, speakers=args.speakers, seed=args.seed, workers=args.workers,
                           takes=args.takes)
    print(f"wrote {summary['clips']} clips of {len(words)} words by {summary['speakers']} speakers "
          f"in {summary['seconds']:.1f} s")
    print(args.out)
    return 0


def _download(args) -> int:
    from kws_hpc.data.download import download

    print(download(args.version, args.dest, url=args.url, extract=not args.no_extract))
    return 0


def _stream(args) -> int:
    from kws_hpc.evaluate.teststream import make_stream, stream_summary

    wav, tsv = make_stream(args.corpus, args.out, minutes=args.minutes, seed=args.seed, keywords=_words(args.keywords),
                           store=args.store, split=args.split, keyword_share=args.keyword_share,
                           noise_share=args.noise_share)
    print(stream_summary(tsv, args.minutes))
    print(wav)
    return 0
