// Live create and edit forms (everything posts and saves without this script).
//
// - Child rows edited inline (a quote's lines): "Add a row" copies the blank row of the
//   table's <template> with a new index; the bin removes a row (a stored one is deleted
//   when the form is saved).
// - The form's live state: as the user types, the form is posted to its preview URL
//   (data-h-preview), and the server answers which fields visible_when, required_when and
//   readonly_when show, require and lock, and what the formulas and totals come to — the
//   same evaluator the save uses, so the two never disagree.

const form = document.querySelector("form[data-h-preview]");

function addRow(table) {
  const blank = table.querySelector("template[data-h-blank]");
  const body = table.querySelector("tbody[data-h-rows]");
  const index = Number(table.dataset.hNext || "0");
  table.dataset.hNext = String(index + 1);
  const holder = document.createElement("tbody");
  holder.innerHTML = blank.innerHTML.replaceAll("__i__", String(index));
  const row = holder.firstElementChild;
  body.append(row);
  if (window.htmx) window.htmx.process(row);
  const first = row.querySelector("select, input:not([type=hidden])");
  if (first) first.focus();
}

function apply(state) {
  for (const [name, field] of Object.entries(state.fields || {})) {
    const box = document.getElementById(`f-${name}-field`);
    if (!box) continue;
    box.hidden = !field.visible;
    const label = box.querySelector(".form-label");
    if (label) label.classList.toggle("required", field.required);
    for (const control of box.querySelectorAll("input, select, textarea")) {
      control.disabled = field.readonly;
      if (control.name === "_q") continue;
      if (field.required) control.setAttribute("aria-required", "true");
      else control.removeAttribute("aria-required");
    }
  }
  for (const [name, visible] of Object.entries(state.sections || {})) {
    const section = form.querySelector(`[data-h-section="${CSS.escape(name)}"]`);
    if (section) section.hidden = !visible;
  }
  for (const [name, html] of Object.entries(state.values || {})) {
    for (const shown of form.querySelectorAll(`[data-h-value="${CSS.escape(name)}"]`)) {
      shown.innerHTML = html;
    }
  }
  for (const [name, rows] of Object.entries(state.children || {})) {
    const table = form.querySelector(`[data-h-children="${CSS.escape(name)}"]`);
    if (!table) continue;
    const trs = table.querySelectorAll("tbody[data-h-rows] > tr[data-h-row]");
    rows.forEach((values, i) => {
      if (!trs[i]) return;
      for (const [column, html] of Object.entries(values)) {
        const cell = trs[i].querySelector(`[data-h-cell="${CSS.escape(column)}"] [data-h-value]`);
        if (cell) cell.innerHTML = html;
      }
    });
  }
}

if (form) {
  let timer = 0;
  let asked = 0;
  const ask = async () => {
    const mine = ++asked;
    const body = new FormData(form);
    body.delete("_q");
    // the chosen files go with the save, not with every keystroke's preview
    for (const [name, value] of [...body.entries()]) {
      if (value instanceof File) body.delete(name);
    }
    try {
      const answer = await fetch(form.dataset.hPreview, {
        method: "POST",
        body,
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (answer.ok && mine === asked) apply(await answer.json());
    } catch {
      // offline for a moment: the save still checks everything
    }
  };
  const later = (event) => {
    if (event.target instanceof HTMLElement && event.target.getAttribute("name") === "_q") return;
    clearTimeout(timer);
    timer = setTimeout(ask, 200);
  };
  form.addEventListener("input", later);
  form.addEventListener("change", later);
  form.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    const add = target && target.closest("[data-h-add-row]");
    const remove = target && target.closest("[data-h-remove-row]");
    if (add) {
      addRow(add.closest("[data-h-children]"));
      later(event);
    } else if (remove) {
      const table = remove.closest("[data-h-children]");
      remove.closest("tr[data-h-row]").remove();
      const next = table.querySelector("[data-h-add-row]");
      if (next) next.focus();
      clearTimeout(timer);
      timer = setTimeout(ask, 0);
    }
  });
  // a form sent back with errors: its totals are worked out again for what it holds
  if (form.hasAttribute("data-h-refresh")) ask();
  // a reference picked from a search's options changes the select without an input event
  document.body.addEventListener("htmx:afterSwap", (event) => {
    if (form.contains(event.target)) later(event);
  });
}
