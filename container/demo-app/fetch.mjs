// `node /app/fetch.mjs URL`: a curl stand-in for the demo apps' images. Prints one JSON line with the status, the
// response headers and the body; exits 0 on any HTTP answer, 1 when there is none (the reason on stderr).
const url = process.argv[2];
if (!url) {
  console.error('usage: node /app/fetch.mjs URL');
  process.exit(2);
}
try {
  const r = await fetch(url, { signal: AbortSignal.timeout(5000), headers: { connection: 'close' } });
  console.log(JSON.stringify({ status: r.status, headers: Object.fromEntries(r.headers), body: await r.text() }));
} catch (err) {
  console.error(`${url}: ${err.cause?.code ?? err.cause?.message ?? err.message}`);
  process.exit(1);
}
