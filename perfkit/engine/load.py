"""Open-loop load: Poisson arrivals at ``arrival_rate_qps`` served by continuous batching, as percentiles.

The server model is the one :mod:`perfkit.simulate` runs request by request; both price an engine step with
the same engine functions (:class:`StepPrices`, built by :func:`perfkit.engine.system.step_prices`):

- every step advances each of the ``n`` decoding sequences by one token and takes up to ``chunk_tokens``
  prompt tokens (FCFS, several prompts may share a chunk); it lasts ``decode(n) + prompt_token_s * c`` for
  ``c`` prompt tokens (``decode(n)`` is the engine's decode pass at ``n`` sequences of the mean context);
- a request takes a KV slot when its first chunk is scheduled and holds it to its last token; at most
  ``running_cap`` slots exist (what the KV cache holds, or ``batch_size``, the running-sequence cap);
- its first token comes with its last prompt chunk; each of the other ``output_seq - 1`` comes one step later.
  ``request_overhead_s`` (HTTP, tokenization) is added to the TTFT.

The analytic form (one replica; a deployment of ``replicas`` splits the rate evenly):

- decoding sequences form an M/G/inf system: ``N = lam * (output_seq - 1) * tau`` on average, and a request
  sees itself plus a Poisson number of others; the mean step is ``tau = D(1 + N) / (1 - lam * isl * q)``
  (the prompt tokens of the arrivals are spread over the steps), with ``D`` affine along the chord of two
  engine decode passes (refined once at the solution);
- the prompt lane is an M/G/1 queue whose server works ``chunk_tokens`` per busy step: service
  ``isl * (D + q * chunk) / chunk`` (but no less than a prompt's own whole chunk steps), Pollaczek-Khinchine
  mean wait and an exponential tail whose decay solves the Cramer-Lundberg equation; KV slots are an M/G/c
  queue with the Sakasegawa (Allen-Cunneen) wait; the TTFT quantiles invert the closed-form CDF of those
  waits plus the rest of the step in flight (uniform);
- TPOT spread: the number of prompts prefilled during a request's decode (Poisson, Cornish-Fisher
  quantiles, amplified by ``1 / (1 - lam * isl * q)`` since a longer decode sees more of them; no step
  exceeds one carrying a whole chunk) and the time-averaged batch it sees (variance ``2/3 * lam * L``, M/G/inf
  shot noise), combined in quadrature; the e2e p99 adds the TTFT and TPOT deviations (they rise together).

Where it is approximate: the exponential wait tail (at low load the real wait is closer to a uniform
residual, so TTFT p90/p99 read up to ~13% low) and the quadrature rule; percentiles are within 15% of the
simulator up to 85% utilisation (``benchmarks/RESULTS.md``). Output-length spread enters the TPOT spread
only through the mean; near capacity (above ~90%, a KV-bound one especially) the tail is sensitive to the
exact queue and the figures are indicative. At or above capacity the queue grows without bound: ``saturated`` is true, the
achieved rate is the capacity and the latencies are infinite.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

#: The keys of the response's ``load`` object (sweep columns are ``load_`` + key).
FIELDS = ("ttft_ms_mean", "ttft_ms_p50", "ttft_ms_p90", "ttft_ms_p99", "tpot_ms_mean", "tpot_ms_p50",
          "tpot_ms_p90", "tpot_ms_p99", "e2e_ms_mean", "e2e_ms_p99", "achieved_requests_s", "output_tokens_s",
          "mean_running_sequences", "utilisation", "capacity_qps", "bound", "saturated")
COLUMNS = tuple("load_" + key for key in FIELDS)
#: What bounds a layout's rate: the prompt lane, the decode batch, the KV slots.
BOUNDS = np.array(["prefill", "decode", "kv_cache"])
#: Standard normal quantiles of the reported percentiles.
Z = {50: 0.0, 90: 1.2815515655446004, 99: 2.3263478740408408}


def saturation_note(row) -> str:
    """The sentence ``system.notes`` carries for a saturated row (a dict of the ``load_*`` scalars)."""
    what = {"prefill": "the prompt lane (prefill chunks per step)", "decode": "the decode steps",
            "kv_cache": "the KV-cache slots"}[str(row["load_bound"])]
    return (f"saturated: arrival_rate_qps={float(row['arrival_rate_qps']):g} exceeds this layout's capacity of "
            f"{float(row['load_capacity_qps']):.3g} requests/s, bound by {what}; the queue grows without bound "
            "(latencies reported as null)")


@dataclass
class StepPrices:
    """What one continuous-batching step costs on one replica, from the engine (arrays broadcast together)."""

    decode: Callable[[np.ndarray], np.ndarray]  # seconds of a step with n decoding sequences (n >= 1)
    prompt_token_s: np.ndarray  # seconds each prompt token adds to a step
    chunk_tokens: float  # prompt tokens one step takes at most
    running_cap: np.ndarray  # KV slots: sequences that can run at once
    request_overhead_s: float  # paid once per request before its first token


def open_loop(prices: StepPrices, rate_qps, isl, osl, input_cv=0.0, output_cv=0.0, replicas=1) -> dict:
    """The ``load_*`` figures of a deployment of ``replicas`` copies serving ``rate_qps`` in all."""
    lam = np.asarray(rate_qps, dtype=float) / replicas
    isl, osl = np.asarray(isl, dtype=float), np.asarray(osl, dtype=float)
    cap = np.asarray(prices.running_cap, dtype=float)
    d1 = prices.decode(np.ones_like(cap))
    full = _chord(d1, prices.decode(cap), cap)
    # the capacity does not depend on the rate: it is found once per layout and workload, with the decode
    # chord refined at the batch it runs at there
    capacity = _capacity(full, prices, isl, osl, cap)
    line = _refined(capacity, full, d1, prices, isl, osl, cap)
    capacity = _capacity(line, prices, isl, osl, cap)
    bound = BOUNDS[_state(capacity, line, prices, isl, osl)["rho"].argmax(axis=0)]  # what fills up first
    line = _refined(lam, full, d1, prices, isl, osl, cap)  # the chord around the batch the requests see
    s = _state(lam, line, prices, isl, osl)
    return _figures(s, lam, capacity, bound, isl, osl, input_cv, output_cv, prices, replicas)


def _refined(lam, line, d1, prices, isl, osl, cap):
    n = _state(lam, line, prices, isl, osl)["n"]
    seen = np.clip(np.rint(1.0 + np.nan_to_num(n, nan=0.0, posinf=0.0)), 1.0, cap)
    return tuple(np.where(seen > 1, new, old) for new, old in zip(_chord(d1, prices.decode(seen), seen), line))


def _chord(d1, dn, n):
    """``(D0, b)`` of the affine decode cost ``D(n) = D0 + b n`` through ``D(1)`` and ``D(n)``."""
    slope = np.where(n > 1, (dn - d1) / np.maximum(n - 1.0, 1.0), 0.0)
    return d1 - slope, slope


def _state(lam, line, prices: StepPrices, isl, osl) -> dict:
    """Means and utilisations at per-replica rate ``lam`` (NaN where the rate cannot be served)."""
    d0, b = line[0], line[1]
    q, chunk, cap = prices.prompt_token_s, prices.chunk_tokens, prices.running_cap
    m = np.maximum(osl - 1.0, 0.0)  # decode steps after the first token
    a = lam * isl * q  # share of each step spent on the arrivals' prompt tokens
    rho_d = a + b * lam * m  # the decode side diverges as this reaches 1
    ok = rho_d < 1.0
    n = np.where(ok, lam * m * (d0 + b) / np.where(ok, 1.0 - rho_d, 1.0), np.inf)  # mean decoding sequences
    d_seen = d0 + b * np.minimum(1.0 + n, cap)
    tau = d_seen / np.maximum(1.0 - a, 1e-12)  # the mean step a decoding request sees
    busy_step = d_seen + q * chunk  # a step that takes a whole prompt chunk
    service = isl * busy_step / chunk  # prompt-lane time per request
    rho_p = lam * service
    own = np.ceil(isl / chunk) * d_seen + q * isl  # a request's own prefill, alone in the lane
    slot = own + m * tau  # time a request holds a KV slot
    rho_kv = lam * slot / cap
    return {"n": n, "tau": tau, "d": d_seen, "service": service, "own": own, "slot": slot, "m": m,
            "rho": np.stack(np.broadcast_arrays(rho_p, rho_d, rho_kv)), "q": q, "b": b}


def _capacity(line, prices, isl, osl, cap):
    """The largest per-replica rate every utilisation stays below 1 at (bisection on a log scale).

    The bracket's top is a true bound: no step is shorter than ``D(1)``, so the prompt lane saturates below
    ``1 / (isl (D(1) / chunk + q))`` and the KV slots below ``cap / ((ceil(isl / chunk) + m) D(1))``."""
    d1 = line[0] + line[1]
    q, chunk = prices.prompt_token_s, prices.chunk_tokens
    m = np.maximum(osl - 1.0, 0.0)
    top = np.minimum(1.0 / (isl * (d1 / chunk + q)), cap / ((np.ceil(isl / chunk) + m) * d1))
    lo = np.zeros(np.broadcast(d1, isl, osl, cap).shape)
    hi = np.broadcast_to(top, lo.shape).copy()
    for _ in range(24):  # a relative precision of about 1e-6 over the bracket
        mid = np.where(lo > 0, np.sqrt(lo * hi), hi / 1024.0)
        rho = _state(mid, line, prices, isl, osl)["rho"].max(axis=0)
        fine = rho < 1.0
        lo, hi = np.where(fine, mid, lo), np.where(fine, hi, mid)
    return lo


def _figures(s, lam, capacity, bound, isl, osl, input_cv, output_cv, prices, replicas) -> dict:
    rho = np.nan_to_num(s["rho"], nan=np.inf)
    utilisation = lam / capacity  # the share of the layout's capacity the offered rate takes
    saturated = ~(rho.max(axis=0) < 1.0) | ~(utilisation < 1.0)
    rho_p, rho_kv = np.minimum(rho[0], 1.0 - 1e-9), np.minimum(rho[2], 1.0 - 1e-9)
    service, own, tau, m, cap = s["service"], s["own"], s["tau"], s["m"], prices.running_cap

    # time to first token: wait for the step in flight, the prompt lane and a KV slot, then the own prefill
    busy = 1.0 - np.exp(-lam * s["slot"])  # chance the engine is mid-step when a request arrives
    lane = np.maximum(service, own)  # a queued prompt rarely shares its first and last steps
    w_lane = lam * lane ** 2 * (1.0 + input_cv ** 2) / (2.0 * (1.0 - rho_p))
    k = np.sqrt(2.0 * (cap + 1.0)) - 1.0
    p_slot = rho_kv ** k  # Sakasegawa: chance of waiting for a slot
    w_slot = p_slot / (cap * (1.0 - rho_kv)) * s["slot"] * (1.0 + output_cv ** 2) / 2.0
    base = prices.request_overhead_s + own
    ttft_mean = base + busy * s["d"] / 2.0 + w_lane + w_slot

    # time per output token: the batch a request sees and the prompts prefilled during its decode
    life = m * tau
    prompts = lam * life  # arrivals during a request's decode (Poisson)
    per_prompt = s["q"] * isl / np.maximum(m, 1.0)  # what one of them adds to this request's TPOT
    sd_batch = s["b"] * np.sqrt(2.0 / 3.0 * prompts)  # time-averaged batch over the decode (shot noise)

    # the waits for the prompt lane and for a KV slot, each with an exponential tail: the lane's decay from
    # the Cramer-Lundberg equation of its M/G/1 queue, its weight matched to the mean wait
    lane_scale = lane / _lundberg(rho_p, input_cv)
    waits = ((np.minimum(w_lane / lane_scale, rho_p), lane_scale),
             (np.minimum(p_slot, 1.0), w_slot / np.maximum(p_slot, 1e-300)))
    amplify = 1.0 / np.maximum(1.0 - lam * isl * s["q"], 1e-9)  # a longer decode sees more prompts
    out = {}
    for p, z in Z.items():
        spread = (s["d"] / prices.chunk_tokens + s["q"]) * isl * input_cv * z  # the own prompt's length
        out[f"ttft_ms_p{p}"] = base + spread + _step_and_wait_quantile(p / 100.0, busy, s["d"], waits)
        dev_prompts = _poisson_dev(prompts * (1.0 + input_cv ** 2), z, p / 100.0)
        batch_dev = sd_batch * z
        # no step takes more than a whole chunk: TPOT stays below the step that always carries one
        out[f"tpot_ms_p{p}"] = np.minimum(tau + _combine(amplify * per_prompt * dev_prompts, batch_dev),
                                          np.maximum(s["d"] + batch_dev + s["q"] * prices.chunk_tokens, tau))
    e2e_mean = ttft_mean + m * tau
    # TTFT and TPOT rise together in busy spells: their deviations add (and the output length's spread)
    e2e_dev = out["ttft_ms_p99"] - ttft_mean + m * (out["tpot_ms_p99"] - tau) + m * tau * output_cv * Z[99]

    inf = np.where(saturated, np.inf, 1.0)
    achieved = np.minimum(lam, capacity) * replicas
    figures = {
        "ttft_ms_mean": ttft_mean, "tpot_ms_mean": tau, "e2e_ms_mean": e2e_mean, "e2e_ms_p99": e2e_mean + e2e_dev,
        **{k: out[k] for k in sorted(out)},
    }
    result = {f"load_{k}": np.maximum(v, 0.0) * 1e3 * inf for k, v in figures.items()}
    running = np.where(saturated, cap, np.minimum(lam, capacity) * (own + life))
    shape = np.broadcast(result["load_ttft_ms_mean"], achieved, running).shape
    result.update({
        "load_achieved_requests_s": np.broadcast_to(achieved, shape),
        "load_output_tokens_s": np.broadcast_to(achieved * osl, shape),
        "load_mean_running_sequences": np.broadcast_to(running * replicas, shape),
        "load_utilisation": np.broadcast_to(utilisation, shape),
        "load_capacity_qps": np.broadcast_to(capacity * replicas, shape),
        "load_bound": np.broadcast_to(bound, shape),
        "load_saturated": np.broadcast_to(saturated, shape),
    })
    return {k: np.broadcast_to(result[k], shape) for k in COLUMNS}


def _step_and_wait_quantile(p, busy, step, waits, iterations: int = 14):
    """Quantile ``p`` of ``R + W``: ``R`` the rest of the step in flight (zero when idle, else uniform on
    ``[0, step]``), ``W`` the queue waits, ``P(W > y) = sum(weight * exp(-y / scale))`` over ``waits``.

    Beyond one step the tail is a sum of exponentials, solved by Newton's method on its logarithm (convex and
    decreasing: from the largest one-term root the steps never overshoot); rows whose quantile falls within
    the first step are solved by bisection on the closed-form CDF."""
    arrays = np.broadcast_arrays(busy, step, *[v for pair in waits for v in pair])
    shape = arrays[0].shape
    busy, step, *flat = (np.array(a, dtype=float).reshape(-1) for a in arrays)
    waits = [(flat[2 * i], np.maximum(flat[2 * i + 1], 1e-300)) for i in range(len(flat) // 2)]
    log_tail = np.log(1.0 - p)
    terms = []
    with np.errstate(divide="ignore"):
        for weight, scale in waits:
            y = step / scale
            log_m = np.logaddexp(np.log(1.0 - busy),
                                 np.log(busy * scale / step) + y + np.log1p(-np.exp(-y)))
            terms.append((np.log(weight) + log_m, scale))
    x = np.max([scale * (a - log_tail) for a, scale in terms], axis=0)
    for _ in range(6):
        exps = [a - x / scale for a, scale in terms]
        top = np.max(exps, axis=0)
        top = np.where(np.isfinite(top), top, 0.0)
        parts = [np.exp(e - top) for e in exps]
        total = sum(parts)
        g = top + np.log(total) - log_tail
        slope = -sum(part / scale for part, (_, scale) in zip(parts, terms)) / total
        x = np.where(np.isfinite(x) & (g > 0), x - g / slope, x)
    out = np.where(np.isfinite(x), x, -np.inf)
    inside = ~(out >= step)  # the quantile lies within the first step: bisection there
    if inside.any():
        out[inside] = _within_step(p, busy[inside], step[inside],
                                   [(w[inside], s[inside]) for w, s in waits], iterations)
    return out.reshape(shape)


def _within_step(p, busy, step, waits, iterations):
    def cdf(x):
        out = (1.0 - busy) + busy * x / step
        for weight, scale in waits:
            tail = np.exp(-x / scale)
            out = out - weight * ((1.0 - busy) * tail + busy / step * scale * (1.0 - tail))
        return out

    lo, hi = np.zeros_like(step), step.copy()
    f_lo, f_hi = cdf(lo), cdf(hi)
    for _ in range(iterations):
        x = 0.5 * (lo + hi)
        f = cdf(x)
        below = f < p
        lo, f_lo = np.where(below, x, lo), np.where(below, f, f_lo)
        hi, f_hi = np.where(below, hi, x), np.where(below, f_hi, f)
    share = np.clip((p - f_lo) / np.maximum(f_hi - f_lo, 1e-300), 0.0, 1.0)
    return lo + share * (hi - lo)


def _lundberg(rho, cv, iterations: int = 12):
    """``y = theta * S`` solving ``rho * (M(y) - 1) = y``, ``M`` the moment generating function of a service of
    mean 1 (fixed, or gamma with coefficient of variation ``cv``): ``P(wait > x) ~ exp(-theta x)``.

    The root lies below the heavy-traffic root ``2 (1 - rho) / (rho (1 + cv^2))`` (``M`` is at least its
    quadratic expansion): bisection in that bracket, then a secant step."""
    cv2 = np.asarray(cv, dtype=float) ** 2
    rho = np.maximum(rho, 1e-12)
    fixed = not np.any(cv2 > 0)
    top = 60.0 if fixed else np.where(cv2 > 0, (1.0 - 1e-9) / np.maximum(cv2, 1e-12), 60.0)
    hi = np.minimum(np.minimum(top, 60.0), 2.0 * (1.0 - rho) / (rho * (1.0 + cv2)))
    hi = np.broadcast_to(np.maximum(hi, 1e-9), np.broadcast(rho, hi).shape)
    lo = np.zeros_like(hi)

    def excess(y):  # rho (M(y) - 1) - y: negative below the root
        mgf = np.exp(y) if fixed else np.where(cv2 > 0, (1.0 - y * cv2) ** (-1.0 / np.maximum(cv2, 1e-12)), np.exp(y))
        return rho * (mgf - 1.0) - y

    f_lo, f_hi = np.full_like(hi, rho - 1.0) * 1e-12, excess(hi)
    for _ in range(iterations):
        y = 0.5 * (lo + hi)
        f = excess(y)
        short = f < 0
        lo, f_lo = np.where(short, y, lo), np.where(short, f, f_lo)
        hi, f_hi = np.where(short, hi, y), np.where(short, f_hi, f)
    share = np.clip(-f_lo / np.maximum(f_hi - f_lo, 1e-300), 0.0, 1.0)
    return np.maximum(lo + share * (hi - lo), 1e-12)


def _poisson_dev(mean, z, p):
    """Deviation of a Poisson count from its mean at quantile ``p`` (normal quantile ``z``): Cornish-Fisher,
    and zero arrivals while ``P(K = 0) = exp(-mean)`` covers ``p``."""
    cornish_fisher = np.maximum(z * np.sqrt(mean) + (z * z - 1.0) / 6.0, -mean)
    return np.where(mean <= -np.log(p), -mean, cornish_fisher)


def _combine(*devs):
    """Deviations of independent parts from their means, added in quadrature (sign of their sum)."""
    total = sum(devs)
    return np.sign(total) * np.sqrt(sum(d * d for d in devs))
