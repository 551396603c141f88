// The bench's SVG chart, written by hand: hand-offs/s against the number of processes on
// one name, the library and the native lock side by side, one panel per database.

const COLORS = { library: '#2b6cb0', native: '#a0aec0' };
const LABELS = { library: 'nestjs-rlock', native: 'native lock, same work inside' };

const esc = (s) =>
  String(s).replace(
    /[&<>"]/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c],
  );

const compact = (n) =>
  n >= 10_000
    ? `${Math.round(n / 1000)}k`
    : n >= 1000
      ? `${(n / 1000).toFixed(1)}k`
      : n >= 10
        ? String(Math.round(n))
        : n.toFixed(1);

/** Breaks a note into lines of at most `width` characters. */
function wrap(text, width) {
  const lines = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + word.length + 1 > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

/**
 * `panels`: [{ title, notes?: string[], groups: [{ label, library?, native? }] }], values in
 * hand-offs/s (missing: not measured), on a logarithmic axis (they span 10 to 50,000).
 * Returns the SVG document.
 */
function handoffChart({ title, subtitle, panels }) {
  const panelWidth = 300;
  const gap = 40;
  const panelHeight = 260;
  const noteLines = panels.map((p) => (p.notes ?? []).flatMap((n) => wrap(n, 58)));
  const margin = {
    top: 100,
    left: 60,
    bottom: 50 + 12 * Math.max(0, ...noteLines.map((l) => l.length)),
  };
  const width = Math.max(760, margin.left + panels.length * (panelWidth + gap));
  const height = margin.top + panelHeight + margin.bottom;
  const values = panels.flatMap((p) =>
    p.groups.flatMap((g) => [g.library, g.native]).filter((v) => Number.isFinite(v) && v > 0),
  );
  const low = 10 ** Math.floor(Math.log10(Math.max(1, Math.min(...values, 10))));
  const high = 10 ** Math.ceil(Math.log10(Math.max(...values, 10)));
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${margin.left}" y="22" font-size="15" font-weight="bold">${esc(title)}</text>`,
  ];
  if (subtitle) {
    out.push(`<text x="${margin.left}" y="40" fill="#4a5568">${esc(subtitle)}</text>`);
  }
  let lx = margin.left;
  for (const series of ['library', 'native']) {
    out.push(
      `<rect x="${lx}" y="50" width="12" height="12" fill="${COLORS[series]}"/>`,
      `<text x="${lx + 16}" y="60">${esc(LABELS[series])}</text>`,
    );
    lx += 16 + LABELS[series].length * 6.2 + 24;
  }
  panels.forEach((panel, p) => {
    const x0 = margin.left + p * (panelWidth + gap);
    const y0 = margin.top;
    const bottom = y0 + panelHeight;
    const y = (v) => bottom - (Math.log10(v / low) / Math.log10(high / low)) * panelHeight;
    out.push(
      `<g>`,
      `<text x="${x0 + panelWidth / 2}" y="${y0 - 12}" text-anchor="middle" font-weight="bold">${esc(panel.title)}</text>`,
    );
    for (let v = low; v <= high; v *= 10) {
      out.push(
        `<line x1="${x0}" x2="${x0 + panelWidth}" y1="${y(v)}" y2="${y(v)}" stroke="#e2e8f0"/>`,
        `<text x="${x0 - 4}" y="${y(v) + 4}" text-anchor="end" fill="#4a5568">${compact(v)}</text>`,
      );
    }
    out.push(
      `<line x1="${x0}" x2="${x0}" y1="${y0}" y2="${bottom}" stroke="#4a5568"/>`,
      `<line x1="${x0}" x2="${x0 + panelWidth}" y1="${bottom}" y2="${bottom}" stroke="#4a5568"/>`,
    );
    const slot = panelWidth / Math.max(1, panel.groups.length);
    const bar = Math.min(26, (slot - 12) / 2);
    panel.groups.forEach((group, g) => {
      const cx = x0 + slot * (g + 0.5);
      ['library', 'native'].forEach((series, s) => {
        const v = group[series];
        const bx = cx + (s === 0 ? -bar - 1 : 1);
        if (!(Number.isFinite(v) && v > 0)) {
          out.push(
            `<text x="${bx + bar / 2}" y="${bottom - 4}" text-anchor="middle" fill="#a0aec0">–</text>`,
          );
          return;
        }
        const top = Math.min(bottom - 1, y(v));
        out.push(
          `<rect x="${bx}" y="${top}" width="${bar}" height="${bottom - top}" fill="${COLORS[series]}"><title>${esc(`${LABELS[series]}, ${group.label.replace('\n', ' ')}: ${Math.round(v)} hand-offs/s`)}</title></rect>`,
          `<text x="${bx + bar / 2}" y="${top - 3}" text-anchor="middle" font-size="9">${compact(v)}</text>`,
        );
      });
      group.label.split('\n').forEach((line, l) => {
        out.push(
          `<text x="${cx}" y="${bottom + 15 + l * 12}" text-anchor="middle">${esc(line)}</text>`,
        );
      });
    });
    noteLines[p].forEach((line, l) => {
      out.push(
        `<text x="${x0}" y="${bottom + 48 + l * 12}" fill="#4a5568" font-size="10">${esc(line)}</text>`,
      );
    });
    out.push(`</g>`);
  });
  const mid = margin.top + panelHeight / 2;
  out.push(
    `<text x="${margin.left - 45}" y="${mid}" transform="rotate(-90 ${margin.left - 45} ${mid})" text-anchor="middle" fill="#4a5568">hand-offs/s (log scale)</text>`,
    `<text x="${margin.left}" y="${margin.top + panelHeight + 36}" fill="#4a5568">processes on one name (1: lock + unlock cycles/s of one process)</text>`,
    `</svg>`,
  );
  return out.join('\n') + '\n';
}

module.exports = { handoffChart };
