// Heddle's screens: small progressive enhancements (everything works without them).
// "/" focuses the list's search box, as on GitHub; Escape leaves it.
document.addEventListener("keydown", (event) => {
  const search = document.getElementById("list-q");
  if (!search) return;
  const typing = event.target instanceof HTMLElement &&
    (event.target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(event.target.tagName));
  if (event.key === "/" && !typing) {
    event.preventDefault();
    search.focus();
  } else if (event.key === "Escape" && event.target === search) {
    search.blur();
  }
});
