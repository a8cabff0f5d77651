// node 18's fetch through the bottle. Node has no environment proxy support of its own: the
// dispatcher is undici's ProxyAgent (Debian's node-undici) on HTTPS_PROXY; the bottle CA
// comes from NODE_EXTRA_CA_CERTS (runtime contract). argv: host, refused host, download size,
// events, interval ms. Prints key=value lines.
const crypto = require('crypto');
const { ProxyAgent } = require('undici');
const [host, refused, size, n, interval] = process.argv.slice(2);
const dispatcher = new ProxyAgent(process.env.HTTPS_PROXY);
const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');
const oneLine = (e) => String(e && e.message) + (e && e.cause ? ' (cause: ' + String(e.cause.message || e.cause) + ')' : '');

async function sse(url) {
  const t0 = performance.now();
  const r = await fetch(url, { dispatcher });
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  const names = [];
  const times = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (ev.startsWith('data: ')) {
        names.push(ev.slice(6));
        times.push(performance.now() - t0);
      }
    }
  }
  return { status: r.status, names, times, end: performance.now() - t0 };
}

async function held(url) {
  const t0 = performance.now();
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), 60000);
  const r = await fetch(url, { dispatcher, signal: ac.signal });
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  try {
    while (!buf.includes('\n\n')) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
    }
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  return { first: buf.split('\n\n')[0].replace(/^data: /, ''), ms: performance.now() - t0 };
}

async function main() {
  console.log('node=' + process.version);
  console.log('undici=' + require('undici/package.json').version);
  let r = await fetch(`https://${host}/download?bytes=${size}&c=fetch`, { dispatcher });
  const got = Buffer.from(await r.arrayBuffer());
  console.log('get_status=' + r.status);
  console.log('get_sha=' + sha(got));
  const body = crypto.randomBytes(2 * 1024 * 1024 + 5);
  r = await fetch(`https://${host}/upload?c=fetch`, { method: 'POST', body, dispatcher });
  console.log('post_status=' + r.status);
  console.log('post_sent_sha=' + sha(body));
  if (r.status === 200) console.log('post_origin_sha=' + (await r.json()).sha256);
  const s = await sse(`https://${host}/sse?n=${n}&interval_ms=${interval}&c=fetch`);
  console.log('sse_events=' + s.names.join(','));
  console.log('sse_arrivals_ms=' + s.times.map((t) => t.toFixed(0)).join(','));
  console.log('sse_end_ms=' + s.end.toFixed(0));
  const h = await held(`https://${host}/sse?n=2&interval_ms=600000&c=fetch-held`);
  console.log('sse_held_first=' + h.first);
  console.log('sse_held_first_ms=' + h.ms.toFixed(0));
  try {
    r = await fetch(`https://${refused}/download?bytes=16&c=fetch`, { dispatcher });
    console.log('refused=reached status ' + r.status);
  } catch (e) {
    console.log('refused=' + oneLine(e).replace(/\n/g, ' ').slice(0, 400));
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.log('error=' + oneLine(e));
    process.exit(1);
  },
);
