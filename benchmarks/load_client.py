"""A light Streamlit client for the load benchmark: one session over the websocket protocol
(protobuf BackMsg/ForwardMsg), opening the page and clicking the map as streamlit-folium does
(bench_load.py)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field

COMPUTED = re.compile(r"Computed in ([0-9.,]+) ms on the server")


# --------------------------------------------------------------------------- the client


@dataclass
class Session:
    """One browser tab, as far as the server can tell: a websocket speaking Streamlit's protocol.

    It keeps what a browser keeps between runs: the hashes of cached messages (so the server
    sends references for unchanged large elements, as it does to a browser) and the map
    component's value."""

    url: str
    ws: object = None
    reader: asyncio.Task | None = None
    runs: asyncio.Queue = field(default_factory=asyncio.Queue)
    cached: set = field(default_factory=set)
    map_id: str | None = None
    map_fragment: str | None = None
    map_value: str | None = None
    computed_ms: float | None = None
    errors: list = field(default_factory=list)
    bytes_in: int = 0
    auto_reruns: dict = field(default_factory=dict)  # fragment id -> seconds (`run_every`)

    async def connect(self) -> None:
        import websockets

        self.ws = await websockets.connect(
            self.url, subprotocols=["streamlit"], max_size=None, open_timeout=60
        )
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        try:
            async for data in self.ws:
                self.bytes_in += len(data)
                msg = ForwardMsg()
                msg.ParseFromString(data)
                kind = msg.WhichOneof("type")
                if msg.metadata.cacheable and msg.hash:
                    self.cached.add(msg.hash)
                if kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                    self._element(msg.delta.new_element, msg.delta.fragment_id)
                elif kind == "script_finished":
                    self.runs.put_nowait(msg.script_finished)
                elif kind == "auto_rerun":  # a browser reruns such fragments on a timer
                    self.auto_reruns[msg.auto_rerun.fragment_id] = msg.auto_rerun.interval
                elif kind == "stop_auto_rerun":
                    self.auto_reruns.pop(msg.stop_auto_rerun.fragment_id, None)
        except Exception as err:  # the connection closed: the waiters see it
            self.runs.put_nowait(err)

    def _element(self, el, fragment_id: str) -> None:
        which = el.WhichOneof("type")
        if which == "component_instance" and "st_folium" in el.component_instance.component_name:
            self.map_id = el.component_instance.id
            self.map_fragment = fragment_id or None
        elif which == "markdown":
            m = COMPUTED.search(el.markdown.body)
            if m:
                self.computed_ms = float(m.group(1).replace(",", ""))
        elif which == "exception":
            self.errors.append(f"exception: {el.exception.type}: {el.exception.message}"[:300])
        elif which == "alert" and el.alert.format == el.alert.ERROR:
            self.errors.append(f"error: {el.alert.body}"[:300])

    async def _rerun(self, fragment_id: str | None = None) -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg

        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = ""
        cs.page_script_hash = ""
        cs.widget_states.SetInParent()
        if fragment_id:
            cs.fragment_id = fragment_id
        if self.map_value is not None and self.map_id:
            w = cs.widget_states.widgets.add()
            w.id = self.map_id
            w.json_value = self.map_value
        cs.cached_message_hashes.extend(sorted(self.cached))
        await self.ws.send(msg.SerializeToString())

    async def _until_page_done(self, timeout: float) -> None:
        """Wait for the end of a whole-page run (a fragment's own end, or a run that ended
        early for a rerun, is not the end of what the user waits for)."""
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        deadline = time.perf_counter() + timeout
        while True:
            item = await asyncio.wait_for(self.runs.get(), deadline - time.perf_counter())
            if isinstance(item, Exception):
                raise item
            if item == ForwardMsg.FINISHED_SUCCESSFULLY:
                return
            if item == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
                raise RuntimeError("the app's script does not compile")

    async def open_page(self, timeout: float = 300.0) -> float:
        """Connect and run the page the first time; seconds."""
        t = time.perf_counter()
        await self.connect()
        await self._rerun()
        await self._until_page_done(timeout)
        if not self.map_id:
            raise RuntimeError("the page has no streamlit-folium map")
        return time.perf_counter() - t

    async def click(self, lat: float, lon: float, timeout: float = 300.0) -> float:
        """A map click as streamlit-folium sends it; seconds until the page run it causes ends."""
        self.computed_ms = None
        self.map_value = json.dumps({"last_clicked": {"lat": lat, "lng": lon}})
        t = time.perf_counter()
        await self._rerun(self.map_fragment)
        await self._until_page_done(timeout)
        dt = time.perf_counter() - t
        if self.computed_ms is None:
            self.errors.append(f"click ({lat:.3f}, {lon:.3f}): the page shows no result")
        return dt

    async def until_app_rerun(self, timeout: float = 60.0) -> float:
        """Rerun the auto-rerunning fragments on their timers, as a browser does, until one of
        them reruns the whole page (e.g. the app's wait for the model); seconds."""
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        t = time.perf_counter()
        while time.perf_counter() - t < timeout:
            for fragment_id in list(self.auto_reruns):
                await self._rerun(fragment_id)
            tick = min(self.auto_reruns.values(), default=1.0)
            try:
                item = await asyncio.wait_for(self.runs.get(), tick)
            except TimeoutError:
                continue
            if isinstance(item, Exception):
                raise item
            if item == ForwardMsg.FINISHED_SUCCESSFULLY:
                return time.perf_counter() - t
        raise TimeoutError(f"no page rerun within {timeout} s")

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            await asyncio.gather(self.reader, return_exceptions=True)
