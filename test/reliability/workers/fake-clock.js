// Preloaded with `node -r` (R11): shifts this process's wall clock (Date.now, new Date())
// by RLOCK_FAKE_CLOCK_OFFSET_MS and makes it jump by up to ±RLOCK_FAKE_CLOCK_JUMP_MS every
// 250 ms, forwards and backwards. The monotonic clocks are left alone, as a real skewed
// or NTP-stepped host would have them.
const RealDate = Date;
const base = Number(process.env.RLOCK_FAKE_CLOCK_OFFSET_MS ?? 0);
const jump = Number(process.env.RLOCK_FAKE_CLOCK_JUMP_MS ?? 0);
let offset = base;

const fakeNow = () => RealDate.now() + offset;

class FakeDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(fakeNow());
    else super(...args);
  }

  static now() {
    return fakeNow();
  }
}

globalThis.Date = FakeDate;
if (jump > 0) {
  setInterval(() => {
    offset = base + Math.round((Math.random() * 2 - 1) * jump);
  }, 250).unref();
}
