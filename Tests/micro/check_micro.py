#!/usr/bin/env python3
"""Checks MIRROR STAGE's NATS micro protocol answers with an independent
implementation: nats-py's client and its micro module's own response types
(ServicePing / ServiceInfo / ServiceStats.from_dict, the
io.nats.micro.v1.* type names) — what `nats micro ls | info | stats` read.

    python3 check_micro.py NATS_URL NAME[,NAME...] [NAME:SUBJECT:MIN_REQUESTS:MIN_ERRORS ...]

Every NAME must answer $SRV.PING (all services), $SRV.PING.NAME and
$SRV.{INFO,STATS}.NAME.ID; each STATS expectation must hold. Prints one
JSON line of what it found; exits 1 with the reason otherwise."""
import asyncio
import json
import sys

import nats
from nats.micro.service import (INFO_RESPONSE_TYPE, PING_RESPONSE_TYPE, STATS_RESPONSE_TYPE, ServiceInfo,
                                ServicePing, ServiceStats)


async def gather(nc, subject, wait=1.0):
    """Every answer to one request within `wait` (several services may answer)."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish(subject, b"", reply=inbox)
    out = []
    loop = asyncio.get_running_loop()
    end = loop.time() + wait
    while True:
        left = end - loop.time()
        if left <= 0:
            break
        try:
            msg = await sub.next_msg(timeout=left)
        except (asyncio.TimeoutError, nats.errors.TimeoutError):
            break
        out.append(json.loads(msg.data))
    await sub.unsubscribe()
    return out


def fail(reason):
    print(reason, file=sys.stderr)
    sys.exit(1)


async def main():
    url, names = sys.argv[1], sys.argv[2].split(",")
    expectations = [e.split(":") for e in sys.argv[3:]]
    nc = await nats.connect(url)
    found = {}
    pings = await gather(nc, "$SRV.PING")
    for p in pings:
        if p.get("type") != PING_RESPONSE_TYPE:
            fail(f"PING type {p.get('type')}")
        ping = ServicePing.from_dict(p)
        found.setdefault(ping.name, []).append(ping.id)
    missing = [n for n in names if n not in found]
    if missing:
        fail(f"no PING answer from {missing} (found {sorted(found)})")
    report = {"services": sorted(found)}
    for name in names:
        named = [ServicePing.from_dict(p) for p in await gather(nc, f"$SRV.PING.{name}")]
        if not named or any(p.name != name for p in named):
            fail(f"$SRV.PING.{name} answered {named}")
        sid = named[0].id
        infos = await gather(nc, f"$SRV.INFO.{name}.{sid}")
        if len(infos) != 1 or infos[0].get("type") != INFO_RESPONSE_TYPE:
            fail(f"$SRV.INFO.{name}.{sid} answered {infos}")
        info = ServiceInfo.from_dict(infos[0])
        if info.id != sid or not info.endpoints or any(e.queue_group != name for e in info.endpoints):
            fail(f"INFO of {name}: {infos[0]}")
        stats_all = await gather(nc, f"$SRV.STATS.{name}")
        stats = await gather(nc, f"$SRV.STATS.{name}.{sid}")
        if not stats_all or len(stats) != 1 or stats[0].get("type") != STATS_RESPONSE_TYPE:
            fail(f"$SRV.STATS.{name}.{sid} answered {stats}")
        st = ServiceStats.from_dict(stats[0])
        report[name] = {"id": sid, "version": info.version,
                        "endpoints": {e.subject: [e.num_requests, e.num_errors, e.average_processing_time]
                                      for e in st.endpoints}}
        for e_name, subject, min_requests, min_errors in expectations:
            if e_name != name:
                continue
            e = next((e for e in st.endpoints if e.subject == subject), None)
            if e is None or e.num_requests < int(min_requests) or e.num_errors < int(min_errors):
                fail(f"STATS of {name} {subject}: {e}")
            if e.num_requests and not (0 < e.average_processing_time <= e.processing_time):
                fail(f"STATS of {name} {subject}: processing time {e}")
            if int(min_errors) and not e.last_error:
                fail(f"STATS of {name} {subject}: no last_error")
    await nc.close()
    print(json.dumps(report))


asyncio.run(main())
