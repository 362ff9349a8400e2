// The kanban's drag and drop (SortableJS). A drop posts the card's "Move to" form, as a
// keyboard user does with the select: the server fires the transition (or sets the
// choice). A refused move puts the card back where it was, with the reason on the card;
// a move that happened reloads the board, so counts and sums stay true.
"use strict";

(() => {
  const HEADERS = { "X-Heddle-Move": "1", Accept: "application/json" };

  function say(card, text, ok) {
    const box = card.querySelector(".h-card-message");
    if (!box) return;
    box.textContent = text;
    box.className = `h-card-message small mt-2 ${ok ? "text-success" : "text-danger"}`;
  }

  async function refresh(board) {
    const response = await fetch(board.dataset.refresh, {
      headers: { "HX-Request": "true", "HX-Target": "kanban-board" },
      credentials: "same-origin",
    });
    if (!response.ok) return;
    const holder = document.createElement("div");
    holder.innerHTML = await response.text();
    const fresh = holder.querySelector("#kanban-board");
    if (fresh) {
      board.replaceWith(fresh);
      setUp(fresh);
    }
  }

  async function send(form, to) {
    const data = new FormData(form);
    if (to !== undefined) data.set("to", to);
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: data,
        headers: HEADERS,
        credentials: "same-origin",
      });
      const answer = await response.json();
      return { ok: Boolean(answer.ok), message: String(answer.message || "") };
    } catch (error) {
      return { ok: false, message: String(error) };
    }
  }

  async function moved(board, card, form, to, undo) {
    board.setAttribute("aria-busy", "true");
    const result = await send(form, to);
    board.removeAttribute("aria-busy");
    if (!result.ok) {
      undo();
      say(card, result.message, false);
      card.classList.add("h-refused");
      return;
    }
    await refresh(board);
    const again = document.getElementById(card.id);
    if (again) say(again, result.message, true);
  }

  function setUp(board) {
    if (board.dataset.movable !== "true") return;
    for (const form of board.querySelectorAll("form.h-move")) {
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        const card = form.closest(".h-kanban-card");
        moved(board, card, form, undefined, () => {});
      });
    }
    if (typeof Sortable === "undefined") return;
    for (const list of board.querySelectorAll(".h-kanban-cards")) {
      Sortable.create(list, {
        group: "kanban",
        animation: 150,
        forceFallback: true, // mouse and touch events: the same on every browser and phone
        fallbackTolerance: 4,
        filter: "select, button, input, a",
        preventOnFilter: false,
        onEnd: (event) => {
          if (event.from === event.to) return;
          const card = event.item;
          const form = card.querySelector("form.h-move");
          const from = event.from;
          const before = from.children[event.oldIndex] || null;
          const undo = () => from.insertBefore(card, before);
          if (!form) return undo();
          const select = form.querySelector("select[name=to]");
          if (select) select.value = event.to.dataset.value;
          moved(board, card, form, event.to.dataset.value, () => {
            undo();
            if (select) select.value = from.dataset.value;
          });
        },
      });
    }
  }

  const start = () => {
    const board = document.getElementById("kanban-board");
    if (board) setUp(board);
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
