"""The event-driven run of one replica under continuous batching (the server model of
:mod:`perfkit.engine.load`, request by request).

Every engine step takes the decoding sequences one token further and up to ``chunk_tokens`` prompt tokens,
first-come first-served: the prompts already started, then newly arrived requests while a KV slot is free
(a request takes its slot with its first chunk and frees it with its last token). A step lasts
``decode[n] + prompt_token_s * c``. Runs of pure decode steps (no prompt work, nobody arriving or finishing)
are jumped over in one event, so the loop runs per prompt chunk and per event, not per token.
"""
from __future__ import annotations

import heapq
import math
from collections import deque

import numpy as np


def run(arrivals, isl, osl, decode, prompt_token_s: float, chunk_tokens: int, slots: int,
        request_overhead_s: float) -> dict:
    """Per-request first-token, last-token and admission times (seconds), and the time integral of the
    sequences holding a KV slot. ``decode[n]`` is the step with ``n`` decoding sequences (``decode[0]`` is
    a step with prompt work only)."""
    n_req = len(arrivals)
    first = np.full(n_req, np.nan)
    last = np.full(n_req, np.nan)
    admitted_at = np.full(n_req, np.nan)
    left = [int(x) for x in isl]  # prompt tokens still to prefill
    outs = [int(x) for x in osl]
    arrivals = [float(a) for a in arrivals]
    t, step = 0.0, 0  # time and the number of steps run so far
    nxt = 0  # next request to arrive
    waiting: deque[int] = deque()  # arrived, no slot yet
    prefilling: deque[int] = deque()  # holding a slot, prompt not done
    finishing: list[tuple[int, int]] = []  # heap of (step at whose end the last token comes, request)
    decoding = 0
    held = 0  # sequences holding a slot
    slot_seconds = 0.0
    done = 0
    while done < n_req:
        while nxt < n_req and arrivals[nxt] <= t:
            waiting.append(nxt)
            nxt += 1
        if not prefilling and not (waiting and held < slots):
            if decoding == 0:  # idle: jump to the next arrival
                t = max(t, arrivals[nxt])
                continue
            # pure decode steps until the next arrival or the next last token
            d = decode[decoding]
            until_finish = finishing[0][0] - step
            until_arrival = math.ceil((arrivals[nxt] - t) / d) if nxt < n_req and held < slots else until_finish
            jump = max(1, min(until_finish, until_arrival))
            slot_seconds += held * d * jump
            t += d * jump
            step += jump
        else:
            budget = chunk_tokens
            completed = []
            while budget > 0 and (prefilling or (waiting and held < slots)):
                if prefilling:
                    i = prefilling[0]
                else:
                    i = waiting.popleft()
                    prefilling.append(i)
                    admitted_at[i] = t
                    held += 1
                take = min(budget, left[i])
                left[i] -= take
                budget -= take
                if left[i] == 0:
                    prefilling.popleft()
                    completed.append(i)
                else:
                    break  # the budget is spent on this prompt
            d = decode[decoding] + prompt_token_s * (chunk_tokens - budget)
            slot_seconds += held * d
            t += d
            step += 1
            for i in completed:  # first token at the end of the step of the last chunk
                first[i] = t
                if outs[i] <= 1:
                    last[i] = t
                    held -= 1
                    done += 1
                else:
                    heapq.heappush(finishing, (step + outs[i] - 1, i))
                    decoding += 1
        while finishing and finishing[0][0] == step:
            _, i = heapq.heappop(finishing)
            last[i] = t
            decoding -= 1
            held -= 1
            done += 1
    arrivals = np.asarray(arrivals)
    return {"ttft": first - arrivals + request_overhead_s, "e2e": last - arrivals + request_overhead_s,
            "first": first, "last": last, "admitted": admitted_at, "slot_seconds": slot_seconds, "end": t}
