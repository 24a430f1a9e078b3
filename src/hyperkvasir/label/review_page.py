"""The review app's one page: HTML with its CSS and script inline, so it works with no network at all. Values
from the tree (file names, classes) are only ever set as text, never parsed as HTML."""

from __future__ import annotations

import html
import json

_STYLE = """
body{margin:0;font:15px system-ui,sans-serif;background:#111;color:#eee;display:flex;height:100vh}
main{flex:1;display:flex;align-items:center;justify-content:center;min-width:0}
main img{width:100%;height:100vh;object-fit:contain}  /* large, upscaled when small */
aside{width:440px;overflow:auto;padding:14px;background:#1c1c1c;border-left:1px solid #333}
h1{font-size:15px;margin:10px 0 4px}.muted{color:#999}.file{word-break:break-all;font-family:monospace;font-size:12px}
.label{font-size:20px;margin:6px 0}.bar{height:8px;background:#3a7bd5;border-radius:2px}
.row{display:flex;gap:8px;align-items:center;margin:2px 0}.row span{flex:none;width:190px;font-size:13px}
.thumbs{display:flex;flex-wrap:wrap;gap:6px}.thumbs figure{margin:0;width:104px;font-size:11px;overflow-wrap:anywhere}
.thumbs img{width:104px;height:88px;object-fit:cover;display:block}
#picker{display:grid;grid-template-columns:1fr 1fr 1fr;gap:3px;margin-top:6px}
#picker button{background:#2a2a2a;color:#eee;border:1px solid #444;text-align:left;font-size:11px;padding:2px;
  cursor:pointer;overflow:hidden;white-space:nowrap;text-overflow:ellipsis}
#picker.active button{border-color:#e0a030}#status{min-height:20px;color:#8fd18f}.error{color:#ff8080!important}
kbd{background:#333;border-radius:3px;padding:0 4px}
"""

_SCRIPT = """
const CLASSES = JSON.parse(document.getElementById('classes').textContent);
let index = 0, item = null, relabel = false, poll = null;
const $ = id => document.getElementById(id);
const imageUrl = path => '/image?path=' + encodeURIComponent(path);
function letter(cls) { const c = CLASSES.find(c => c.class === cls); return c ? c.letter + ' ' + c.class : '—'; }
function say(text, error) { $('status').textContent = text; $('status').className = error ? 'error' : ''; }
function thumbs(box, found, waiting) {
  box.replaceChildren();
  if (found === null) { box.textContent = waiting; return; }
  if (!found.length) { box.textContent = 'none'; return; }
  for (const f of found) {
    const fig = document.createElement('figure'), img = document.createElement('img');
    const cap = document.createElement('figcaption');
    img.src = imageUrl(f.file); img.alt = f.file; img.title = f.file;
    cap.textContent = (f.class ? letter(f.class) : f.part || 'unlabeled')
      + (f.distance != null ? ' · ' + f.distance.toFixed(3) : '');
    fig.append(img, cap); box.append(fig);
  }
}
function render(data) {
  item = data;
  $('image').src = imageUrl(data.file); $('image').alt = data.file;
  $('position').textContent = (data.index + 1) + ' / ' + data.total;
  $('file').textContent = data.file;
  $('given').textContent = data.given ? letter(data.given) : 'unlabeled';
  $('suggested').textContent = data.suggested ? 'suggested: ' + letter(data.suggested) : '';
  $('why').textContent = [data.reason, data.score != null ? 'score ' + data.score.toFixed(3) : '']
    .filter(Boolean).join(' · ');
  $('decision').textContent = data.decision ? 'decided: ' + data.decision : 'not decided';
  const top = $('top'); top.replaceChildren();
  if (!data.top.length) top.textContent = 'no model probabilities (start with --results BENCH)';
  for (const t of data.top) {
    const row = document.createElement('div'), name = document.createElement('span');
    const bar = document.createElement('div');
    row.className = 'row'; name.textContent = t.letter + ' ' + t.class + ' ' + (100 * t.probability).toFixed(1) + ' %';
    bar.className = 'bar'; bar.style.width = Math.max(2, 200 * t.probability) + 'px';
    row.append(name, bar); top.append(row);
  }
  const waiting = data.context_error ? 'unavailable: ' + data.context_error : 'finding…';
  thumbs($('duplicates'), data.duplicates, waiting); thumbs($('neighbours'), data.neighbours, waiting);
  if (data.neighbours_off) $('neighbours').textContent = 'not shown (--neighbours 0)';
  clearTimeout(poll);
  const pending = data.duplicates === null || data.neighbours === null;
  if (pending && !data.context_error) poll = setTimeout(() => load(index), 3000);
}
async function load(i) {
  const response = await fetch('/api/item/' + i);
  if (!response.ok) { say((await response.json()).detail, true); return; }
  index = i; history.replaceState(null, '', '#' + i); render(await response.json());
}
function move(step) { const next = index + step; if (item && next >= 0 && next < item.total) load(next); }
function setRelabel(on) {
  relabel = on; $('picker').className = on ? 'active' : '';
  if (on) say('relabel: press a class letter A–W (Esc cancels)');
}
async function decide(decision, cls) {
  setRelabel(false);
  const body = JSON.stringify({file: item.file, decision: decision, new: cls || null});
  const response = await fetch('/api/decide', {method: 'POST', headers: {'Content-Type': 'application/json'}, body});
  const answer = await response.json();
  if (!response.ok) { say(answer.detail, true); return; }
  say(decision + (answer.new && decision === 'relabel' ? ' → ' + letter(answer.new) : '') + ': ' + answer.file);
  if (index + 1 < item.total) load(index + 1);
  else { $('decision').textContent = 'decided: ' + decision; say('end of the queue'); }
}
document.addEventListener('keydown', event => {
  if (event.ctrlKey || event.metaKey || event.altKey || !item) return;
  const key = event.key.toLowerCase();
  if (relabel) {
    const chosen = CLASSES.find(c => c.letter.toLowerCase() === key);
    if (chosen) decide('relabel', chosen.class); else if (key === 'escape') { setRelabel(false); say(''); }
    event.preventDefault(); return;
  }
  const actions = {k: () => decide('keep'), x: () => decide('exclude'), s: () => decide('skip'),
                   r: () => setRelabel(true), arrowright: () => move(1), arrowleft: () => move(-1)};
  if (actions[key]) { actions[key](); event.preventDefault(); }
});
for (const c of CLASSES) {
  const button = document.createElement('button'); button.textContent = c.letter + ' ' + c.class;
  button.onclick = () => decide('relabel', c.class); $('picker').append(button);
}
load(Math.max(0, parseInt(location.hash.slice(1)) || 0));  // #N: the N-th image of the queue, kept on reload
"""


def page(classes: list[dict], reviewer: str, reviews: str) -> str:
    """The page, with the 23 classes (letter, folder name) for the picker and the keys."""
    data = json.dumps(classes).replace("<", "\\u003c")  # never ends the script element
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>hyperkvasir review</title>
<meta name="viewport" content="width=device-width"><style>{_STYLE}</style></head><body>
<main><img id="image" alt=""></main>
<aside><h1>hyperkvasir review <span id="position" class="muted"></span></h1>
<div id="file" class="file"></div><div class="label">given: <b id="given"></b></div>
<div id="suggested"></div><div id="why" class="muted"></div><div id="decision" class="muted"></div>
<h1>model's top classes</h1><div id="top"></div>
<h1>near duplicates</h1><div id="duplicates" class="thumbs"></div>
<h1>nearest labeled neighbours</h1><div id="neighbours" class="thumbs"></div>
<h1>decide</h1><div id="status"></div>
<p class="muted"><kbd>k</kbd> keep · <kbd>r</kbd> then a letter relabel · <kbd>x</kbd> exclude · <kbd>s</kbd> skip ·
<kbd>←</kbd> <kbd>→</kbd> move</p><div id="picker"></div>
<p class="muted">reviewer {html.escape(reviewer)} · decisions go to <span class="file">{html.escape(reviews)}</span></p>
</aside><script type="application/json" id="classes">{data}</script><script>{_SCRIPT}</script></body></html>"""
