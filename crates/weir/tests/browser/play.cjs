// Plays pages of weir's player in headless Chromium (Debian's, driven by playwright-core) and
// prints what each player did, as one JSON line per page.
//
// usage: node play.cjs SECONDS URL[|switch] ...
//   Every URL opens in its own page at once; each is sampled every 500 ms for SECONDS.
//   With "|switch", once the player reports two renditions or more, it is told to switch to
//   the other of the first two (hls.js), and the samples show the picture size changing.
//   With "|pause", once playing, the video is paused for 4 s and played again (the page
//   should then jump back to live).
// NODE_PATH must point at the node_modules holding playwright-core (scripts/setup.sh).
"use strict";
const { chromium } = require("playwright-core");

async function main() {
  const [seconds, ...targets] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.WEIR_CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--autoplay-policy=no-user-gesture-required"],
  });
  const results = await Promise.all(targets.map(async (target) => {
    const [url, action] = target.split("|");
    const page = await browser.newPage();
    const logs = [];
    page.on("console", (m) => { if (m.type() === "error") logs.push(m.text()); });
    page.on("pageerror", (e) => logs.push(`page error: ${e.message}`));
    await page.goto(url);
    const samples = [];
    let switched = false;
    let pausedAt = null;
    let startedAt = null;
    let resumed = false;
    for (let i = 0; i < Number(seconds) * 2; i++) {
      await page.waitForTimeout(500);
      const s = await page.evaluate(() => ({
        time: document.getElementById("video").currentTime,
        errors: window.weir.errors, levels: window.weir.levels, level: window.weir.level,
        latency: window.weir.latency, jumps: window.weir.jumps, width: document.getElementById("video").videoWidth,
        duration: Number.isFinite(document.getElementById("video").duration)
          ? document.getElementById("video").duration : null,
        seekStart: document.getElementById("video").seekable.length
          ? document.getElementById("video").seekable.start(0) : null,
        seekEnd: document.getElementById("video").seekable.length
          ? document.getElementById("video").seekable.end(0) : null,
      }));
      // Switch once hls.js has told which rendition it plays (LEVEL_SWITCHED).
      if (action === "switch" && !switched && s.levels >= 2 && s.level >= 0 && s.time > 1) {
        await page.evaluate(() => window.weir.setLevel(window.weir.level === 1 ? 0 : 1));
        switched = true;
      }
      if (startedAt === null && s.time > 0) startedAt = s.time;
      if (action === "pause" && pausedAt === null && startedAt !== null && s.time > startedAt + 1) {
        await page.evaluate(() => document.getElementById("video").pause());
        pausedAt = i;
      } else if (action === "pause" && pausedAt !== null && !resumed && i - pausedAt >= 8) {
        await page.evaluate(() => document.getElementById("video").play());
        resumed = true;
      }
      samples.push(s);
    }
    await page.close();
    return { url, action: action || null, samples, logs };
  }));
  await browser.close();
  for (const r of results) console.log(JSON.stringify(r));
}

main().catch((e) => { console.error(e); process.exit(1); });
