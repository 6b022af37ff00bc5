"""`gair import-official CHECKPOINT --out RUN_DIR [--json]`: import the official GAIR release's
checkpoint (see gair/official.py and docs/OFFICIAL.md).

Registration is light: only argparse here; torch and the model load when the command runs.
"""

from __future__ import annotations

import json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "import-official",
        help="import the official GAIR release checkpoint into a run dir",
        description=(
            "Read the official GAIR release's checkpoint (downloaded by you; CC BY-NC 4.0) "
            "safely, map every tensor onto this project's model and write a run dir usable "
            "everywhere (e.g. gair index build --checkpoint RUN_DIR). Every checkpoint tensor "
            "is mapped or reported as intentionally unused; anything else is an error."
        ),
    )
    p.add_argument("checkpoint", help="the release's .pth checkpoint")
    p.add_argument("--out", required=True, help="run dir to write")
    p.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    p.add_argument("--rs-heads", type=int, default=None, help="RS attention heads (default 16)")
    p.add_argument("--sv-heads", type=int, default=None, help="SV attention heads (default 12)")
    p.add_argument(
        "--unused-prefix",
        action="append",
        default=[],
        metavar="PREFIX",
        help="declare checkpoint tensors under PREFIX intentionally unused (repeatable)",
    )
    p.add_argument(
        "--chip-km",
        type=float,
        default=None,
        metavar="KM",
        help="ground size of one RS chip's side, recorded in config.json (default 2.24: the "
        "release's 224 px window of 10 m Sentinel-2)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing run in --out")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from gair.official import import_official

    report = import_official(
        args.checkpoint,
        args.out,
        rs_heads=args.rs_heads,
        sv_heads=args.sv_heads,
        unused_prefixes=args.unused_prefix,
        force=args.force,
        chip_km=args.chip_km,
    )
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    s = report["sizes"]
    print(f"imported {report['checkpoint']} -> {report['run_dir']}")
    print(f"  sha256 {report['sha256']}")
    print(
        f"  RS ViT width {s['rs']['width']} depth {s['rs']['depth']} heads {s['rs']['heads']}; "
        f"SV ViT width {s['sv']['width']} depth {s['sv']['depth']} heads {s['sv']['heads']} "
        f"at {s['sv']['img_size']} px; embed_dim {s['embed_dim']}"
    )
    print(
        f"  {report['tensors_mapped']} of {report['tensors_in_checkpoint']} tensors mapped "
        f"(street-view ViT in the {report['sv_key_layout']} key layout); logit scale "
        f"{report['logit_scale']:.4g}"
    )
    unused = report["unused_release_tensors"]
    print(f"  intentionally unused release tensors ({len(unused)}):")
    for key, reason in unused.items():
        print(f"    {key}  ({reason})")
    print(f"  kept defaults (no release counterpart): {', '.join(report['kept_default_tensors'])}")
    chip = report["rs_chip"]
    print(f"  RS chip: {chip['km']:g} km on the ground at {chip['px']} px ({chip['source']})")
    print(f"  licence: {report['licence']}")
    return 0
