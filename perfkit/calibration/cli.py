"""``perfkit calibrate``: fit the engine to a measurements CSV and write the parameters (and the report)."""
from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from pathlib import Path


def default_out_dir() -> Path:
    """Where ``perfkit calibrate`` writes without ``--out-dir``: ``$XDG_CACHE_HOME/perfkit/calibrated``
    (``~/.cache/perfkit/calibrated``), never the installed package."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "perfkit" / "calibrated"


def register(sub) -> None:
    p = sub.add_parser("calibrate", help="fit hardware efficiencies and serving profiles to measurements")
    p.add_argument("--csv", help="measurements CSV in the aiconfigurator silicon layout "
                                 "(default: ../shared/data/calibration/measured_serving.csv)")
    p.add_argument("--holdout", default=None,
                   help="comma-separated family:system groups kept out of the fit "
                        "(default: the documented split in perfkit/calibration/split.py; '' holds out nothing)")
    p.add_argument("--out-dir", default=None,
                   help="write hardware/ and serving/ copies here (use them with PERFKIT_HARDWARE_DIR and "
                        "PERFKIT_SERVING_DIR); default: $XDG_CACHE_HOME/perfkit/calibrated "
                        "(~/.cache/perfkit/calibrated)")
    p.add_argument("--in-place", action="store_true",
                   help="update the hardware and serving files of this perfkit checkout instead (maintainers)")
    p.add_argument("--max-evals", type=int, default=100, help="least-squares function evaluations (default 100)")
    p.add_argument("--report", default=None, help="also write the accuracy report (markdown) to this path")
    p.add_argument("--disagg-only", action="store_true",
                   help="fit only the disaggregated-serving profiles (serving/disagg/*.yaml) on the mode=disagg "
                        "points, with the shipped hardware and serving profiles frozen")
    p.add_argument("--collectives", metavar="DIR", default=None,
                   help="instead of the serving fit, fit the collectives block of every system folder of DIR "
                        "(nccl_perf / custom_allreduce_perf tables, e.g. ../shared/data/kernels) into the "
                        "hardware files")
    p.add_argument("--kernels", metavar="DIR", default=None,
                   help="instead of the serving fit, fit the kernel models (every registered family: gemm, ...) "
                        "of every system folder of DIR (<system>/<table>.<backend>-<version>.parquet or .csv, "
                        "e.g. ../shared/data/kernels) into the hardware files' kernels: block")
    p.add_argument("--systems", default=None,
                   help="with --kernels: comma-separated system folders to fit (default: every folder of DIR)")
    p.set_defaults(func=_calibrate)

    p = sub.add_parser("accuracy", help="accuracy of the shipped parameters against a measurements CSV")
    p.add_argument("--csv", help="measurements CSV (default: the bundled reference data)")
    p.add_argument("--report", default="benchmarks/ACCURACY.md", help="markdown output path")
    p.set_defaults(func=_accuracy)


def _calibrate(args) -> int:
    from .. import catalog
    from .fit import fit
    from .measurements import load
    from .params import update_hardware_text, write_profile
    from .report import accuracy_markdown, evaluate_accuracy
    from .split import HELD_OUT, held_out, parse_groups

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.collectives:
        return _collectives(args)
    if args.kernels:
        return _kernels(args)
    groups = HELD_OUT if args.holdout is None else parse_groups(args.holdout)
    measured = load(args.csv)
    train = measured[~held_out(measured, groups)]
    if args.disagg_only:
        return _disagg(args, measured, train, groups)
    result = fit(train, max_nfev=args.max_evals)
    source = (f"fitted by `perfkit calibrate` on {result.train_rows} agg points"
              f" (held out: {', '.join(f'{f}:{s}' for f, s in groups) or 'none'})")
    hw_root, serving_root = catalog._hardware_root(), catalog._serving_root()
    if args.in_place and args.out_dir:
        from ..errors import PerfkitError

        raise PerfkitError("--in-place and --out-dir exclude each other: give one", field="out_dir")
    if not args.in_place:
        out = Path(args.out_dir) if args.out_dir else default_out_dir()
        (out / "hardware").mkdir(parents=True, exist_ok=True)
        (out / "serving").mkdir(parents=True, exist_ok=True)
        for f in Path(hw_root).glob("*.yaml"):
            shutil.copy(f, out / "hardware" / f.name)
        for f in Path(serving_root).glob("*.yaml"):
            shutil.copy(f, out / "serving" / f.name)
        hw_root, serving_root = out / "hardware", out / "serving"
    for name, spec in result.hardware.items():
        path = Path(hw_root) / f"{name}.yaml"
        path.write_text(update_hardware_text(path.read_text(), spec, source))
        print(f"wrote {path}")
    for profile in result.profiles.values():
        profile = dataclasses.replace(profile, source=source, description=f"{profile.name}, fitted")
        print(f"wrote {write_profile(profile, serving_root)}")
    # disaggregated serving on top of the agg fit just made (frozen): perfkit.calibration.disagg
    transfers = _write_transfers(train, result.hardware, result.profiles, serving_root, groups, args.max_evals)
    if args.report:
        frame = evaluate_accuracy(measured, result.hardware, result.profiles, groups, transfers)
        command = "perfkit calibrate " + ("--in-place " if args.in_place else "") + "--report " + args.report
        Path(args.report).write_text(accuracy_markdown(frame, command, f"Fit: {source}."))
        print(f"wrote {args.report}")
    return 0


def _write_transfers(train, hardware, profiles, serving_root, groups, max_nfev: int = 60) -> dict:
    """Fit the disaggregated-serving profiles with ``hardware`` / ``profiles`` frozen and write them into
    ``serving_root/disagg``."""
    from .disagg import fit_transfer, profile_text

    held = ", ".join(f"{f}:{s}" for f, s in groups) or "none"
    transfers = fit_transfer(train, hardware, profiles, max_nfev=max_nfev)
    folder = Path(serving_root) / "disagg"
    folder.mkdir(parents=True, exist_ok=True)
    for name, transfer in transfers.items():
        transfer = dataclasses.replace(transfer, source=f"{transfer.source} (held out: {held})")
        path = folder / f"{name}.yaml"
        path.write_text(profile_text(transfer))
        print(f"wrote {path}")
    return transfers


def _disagg(args, measured, train, groups) -> int:
    """``perfkit calibrate --disagg-only``: the disaggregated-serving profiles alone, the agg parameters as
    shipped (or as ``PERFKIT_HARDWARE_DIR`` / ``PERFKIT_SERVING_DIR`` name them)."""
    from .. import catalog
    from .report import accuracy_markdown, evaluate_accuracy

    if args.in_place and args.out_dir:
        from ..errors import PerfkitError

        raise PerfkitError("--in-place and --out-dir exclude each other: give one", field="out_dir")
    serving_root = catalog._serving_root()
    if not args.in_place:
        out = Path(args.out_dir) if args.out_dir else default_out_dir()
        (out / "serving").mkdir(parents=True, exist_ok=True)
        for f in Path(serving_root).glob("*.yaml"):
            shutil.copy(f, out / "serving" / f.name)
        serving_root = out / "serving"
    transfers = _write_transfers(train, None, None, serving_root, groups, args.max_evals)
    if args.report:
        frame = evaluate_accuracy(measured, groups=groups, transfers=transfers)
        command = "perfkit calibrate --disagg-only " + ("--in-place " if args.in_place else "") + "--report " + args.report
        Path(args.report).write_text(accuracy_markdown(frame, command))
        print(f"wrote {args.report}")
    return 0


def _collectives(args) -> int:
    from .. import catalog
    from ..errors import PerfkitError
    from .collectives import CATALOG, write_blocks

    hw_root = Path(catalog._hardware_root())
    if args.out_dir:
        out = Path(args.out_dir) / "hardware"
        out.mkdir(parents=True, exist_ok=True)
        for f in hw_root.glob("*.yaml"):
            shutil.copy(f, out / f.name)
        hw_root = out
    tables = Path(args.collectives)
    fitted = write_blocks(tables, hw_root) if tables.is_dir() else {}
    if not fitted:
        raise PerfkitError(f"--collectives {args.collectives!r} holds no system folder with an nccl_perf table; "
                           f"expected folders named {', '.join(sorted(CATALOG))}", field="collectives")
    print(f"wrote the collectives of {', '.join(sorted(fitted))} into {hw_root}")
    return 0


def _hardware_out(args) -> Path:
    """The hardware folder a kernel-table fit writes into: the catalog's own with ``--in-place``, else a copy
    of it under ``--out-dir`` (default: :func:`default_out_dir`)."""
    from .. import catalog
    from ..errors import PerfkitError

    hw_root = Path(catalog._hardware_root())
    if args.in_place and args.out_dir:
        raise PerfkitError("--in-place and --out-dir exclude each other: give one", field="out_dir")
    if not args.in_place:
        out = Path(args.out_dir or default_out_dir()) / "hardware"
        out.mkdir(parents=True, exist_ok=True)
        for f in hw_root.glob("*.yaml"):
            shutil.copy(f, out / f.name)
        hw_root = out
    return hw_root


def _kernels(args) -> int:
    from ..errors import PerfkitError
    from .kernels import FAMILIES, tables, write_blocks
    from .kernels.sourced import write_blocks as write_sourced

    root = Path(args.kernels)
    present = sorted({s for m in FAMILIES.values() for s in tables.systems(m.TABLE, root)})
    systems = present if args.systems is None else [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(systems) - set(present))
    if unknown or not systems:
        tables_named = ", ".join(sorted({m.TABLE for m in FAMILIES.values()}))
        raise PerfkitError(f"--kernels {args.kernels!r} holds no {tables_named} table for "
                           f"{', '.join(unknown) or 'any system'}; system folders with one: "
                           f"{', '.join(present) or 'none'}", field="systems" if unknown else "kernels")
    hw_root = _hardware_out(args)
    fitted = write_blocks(root, hw_root, systems)
    print(f"wrote the kernel models of {', '.join(sorted(fitted))} into {hw_root}")
    sourced = write_sourced(hw_root)
    if sourced:
        print(f"wrote the sourced kernel models of {', '.join(sourced)} (their templates' curves at their "
              f"published levels) into {hw_root}")
    return 0


def _accuracy(args) -> int:
    from .measurements import load
    from .report import accuracy_markdown, evaluate_accuracy, kernel_markdown, summary

    frame = evaluate_accuracy(load(args.csv))
    Path(args.report).write_text(accuracy_markdown(frame, "perfkit accuracy --report " + args.report,
                                                   kernels=kernel_markdown()))
    print({k: round(v, 1) for k, v in summary(frame).items()})
    print(f"wrote {args.report}")
    return 0
