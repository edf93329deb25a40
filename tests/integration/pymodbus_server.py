#!/usr/bin/python3
"""A Modbus TCP server built with pymodbus's own server API: the independent
device for tests/integration/test_engine_pymodbus.py.

Serves unit ids given on the command line (default 1), each with 1000
holding registers, input registers, coils and discrete inputs, all zero,
addressed from 0 (zero_mode).  Listens on 127.0.0.1 and a free port, prints
"READY tcp=127.0.0.1:PORT" once listening and runs until SIGTERM/SIGINT.
Run with /usr/bin/python3 (Debian's python3-pymodbus)."""
import asyncio
import logging
import signal
import sys

from pymodbus.datastore import (ModbusSequentialDataBlock, ModbusServerContext,
                                ModbusSlaveContext)
from pymodbus.server.async_io import ModbusTcpServer

SIZE = 1000


def context(units):
    slaves = {}
    for uid in units:
        slaves[uid] = ModbusSlaveContext(
            di=ModbusSequentialDataBlock(0, [0] * SIZE),
            co=ModbusSequentialDataBlock(0, [0] * SIZE),
            hr=ModbusSequentialDataBlock(0, [0] * SIZE),
            ir=ModbusSequentialDataBlock(0, [0] * SIZE),
            zero_mode=True)
    return ModbusServerContext(slaves=slaves, single=False)


async def main(units):
    server = ModbusTcpServer(context(units), address=("127.0.0.1", 0),
                             allow_reuse_address=True)
    task = asyncio.create_task(server.serve_forever())
    await server.serving
    port = server.server.sockets[0].getsockname()[1]
    print(f"READY tcp=127.0.0.1:{port} units={len(units)}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.shutdown()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


if __name__ == "__main__":
    logging.basicConfig(level=logging.CRITICAL)
    ids = [int(a) for a in sys.argv[1:]] or [1]
    asyncio.run(main(ids))
