// Shared by tests/ws/test_order.mjs and bench/ws_throughput: one client
// sends `n` reliable messages "/sink/n i k" to a service that a second
// client offers; the second checks that k counts up from 0.
import { connect, until } from './lib.mjs';

// Until the router knows `service` (asked by client `c`).
export async function untilService(c, service) {
  for (let tries = 0; ; tries++) {
    c.send('/_o2/ws/st', 's', 0, true, service);
    const st = await c.next((m) => m.address === '!_o2/st', 3000, '!_o2/st');
    if (st.args[1] !== '-1') return;
    if (tries > 100) throw new Error(`the ${service} service never appeared`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export async function runThroughput(port, n, { batch = 1000 } = {}) {
  const rx = await connect(port);
  const tx = await connect(port);
  let expect = 0, outOfOrder = 0, received = 0;
  const ETX = '\x03';
  rx.sock.removeAllListeners('message');
  rx.sock.on('message', (data) => {
    const s = data.toString();
    if (!s.startsWith('/sink/n' + ETX)) return rx.msgs.push(s);
    const k = Number(s.split(ETX)[4]);
    if (k !== expect) outOfOrder++;
    expect = k + 1;
    received++;
  });
  rx.send('!_o2/ws/sv', 'siisi', 0, true, 'sink', 1, 1, '', 0);
  await untilService(tx, 'sink');
  const start = process.hrtime.bigint();
  for (let k = 0; k < n; k += batch) {
    for (let j = k; j < Math.min(n, k + batch); j++)
      tx.sock.send(`/sink/n${ETX}i${ETX}0${ETX}T${ETX}${j}${ETX}`);
    // let the socket drain so the sender's own buffer stays small
    while (tx.sock.bufferedAmount > 1 << 20) await new Promise((r) => setTimeout(r, 1));
    await new Promise((r) => setImmediate(r));
  }
  await until(() => received >= n, 60000, `${n} messages (got ${received})`).catch(() => {});
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  rx.close();
  tx.close();
  return { received, outOfOrder, seconds, rate: received / seconds };
}
