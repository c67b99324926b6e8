// Numbers for people: 1.2k runs, 450 ms, 3.1 s, 98.5%, "3 min ago".

export function count(n) {
  if (n === null || n === undefined) return "–";
  const abs = Math.abs(n);
  if (abs < 1000) return String(n);
  for (const [size, unit] of [[1e9, "G"], [1e6, "M"], [1e3, "k"]]) {
    if (abs >= size) {
      const v = n / size;
      return (Math.abs(v) < 10 ? v.toFixed(1) : Math.round(v)).toString().replace(/\.0$/, "") + unit;
    }
  }
  return String(n);
}

export function duration(ns) {
  if (ns === null || ns === undefined) return "–";
  if (ns < 1e3) return `${Math.round(ns)} ns`;
  if (ns < 1e6) return `${Math.round(ns / 1e3)} µs`;
  if (ns < 1e9) return `${Math.round(ns / 1e6)} ms`;
  const s = ns / 1e9;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const m = s / 60;
  return m < 60 ? `${m.toFixed(1)} min` : `${(m / 60).toFixed(1)} h`;
}

export function percent(p) {
  if (p === null || p === undefined) return "–";
  // Never 100% while a run failed, nor 0% while one did: rounding would say so.
  if (p > 99.9 && p < 100) return ">99.9%";
  if (p > 0 && p < 0.1) return "<0.1%";
  return `${p === 100 || p === 0 ? p.toFixed(0) : p.toFixed(1)}%`;
}

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

export function when(iso) {
  if (!iso) return "–";
  const t = new Date(iso);
  return t.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

export function ago(iso, now = Date.now()) {
  if (!iso) return "–";
  const s = Math.max(0, (now - new Date(iso).getTime()) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

// A bucket's label: a day bucket is a UTC day, named by its UTC date (a browser west of
// UTC would name the day before); hours and minutes in local time, with the weekday
// when the buckets span days.
export function bucketLabel(iso, grain, days = false) {
  const t = new Date(iso);
  if (grain === "day") {
    return t.toLocaleDateString(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
  }
  const time = { hour: "2-digit", minute: "2-digit" };
  return t.toLocaleString(undefined, days ? { weekday: "short", ...time } : time);
}
