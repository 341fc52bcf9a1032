// Glass-to-glass latency of weir's player page in headless Chromium: the publisher paints its
// media time (centiseconds, 16 bits) into the picture as 16 black/white stripes; this reads
// them back from the frame on screen and compares with the wall clock.
//
// usage: node latency.cjs ORIGIN STREAM W0_MS SECONDS TECH...
//   W0_MS: wall clock (ms since the epoch) at which the publisher sent media time 0.
// Prints one JSON line per tech: {tech, samples, p50, min, max} in seconds.
// NODE_PATH must point at the node_modules holding playwright-core (scripts/setup.sh).
"use strict";
const { chromium } = require("playwright-core");

async function main() {
  const [origin, stream, w0, seconds, ...techs] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.WEIR_CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--autoplay-policy=no-user-gesture-required"],
  });
  for (const tech of techs) {
    const page = await browser.newPage();
    await page.goto(`${origin}/?stream=${stream}&tech=${tech}`);
    await page.waitForTimeout(8000); // settle at the player's chosen distance from live
    const samples = [];
    for (let i = 0; i < Number(seconds) * 4; i++) {
      await page.waitForTimeout(250);
      const s = await page.evaluate(() => {
        const v = document.getElementById("video");
        if (!v.videoWidth) return null;
        const c = document.createElement("canvas");
        c.width = v.videoWidth; c.height = v.videoHeight;
        const g = c.getContext("2d");
        g.drawImage(v, 0, 0);
        const now = Date.now();
        const row = g.getImageData(0, Math.floor(c.height / 2), c.width, 1).data;
        let value = 0;
        for (let bit = 0; bit < 16; bit++) {
          const x = Math.floor((bit + 0.5) * c.width / 16);
          if (row[x * 4] > 128) value |= 1 << bit;
        }
        return { value, now };
      });
      if (s) samples.push(s);
    }
    const w0ms = Number(w0);
    const lat = samples.map((s) => {
      // media time shown, unwrapped near the wall clock's idea of it
      const expected = (s.now - w0ms) / 10;
      let t = s.value + 65536 * Math.round((expected - s.value) / 65536);
      return (s.now - w0ms - t * 10) / 1000;
    }).sort((a, b) => a - b);
    const pick = (q) => lat.length ? lat[Math.min(lat.length - 1, Math.floor(q * lat.length))] : null;
    console.log(JSON.stringify({ tech, samples: lat.length, p50: pick(0.5), min: lat[0], max: lat[lat.length - 1] }));
    await page.close();
  }
  await browser.close();
}

main().catch((e) => { console.error(e); process.exit(1); });
