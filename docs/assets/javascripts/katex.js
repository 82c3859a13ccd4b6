// Render the math that pymdownx.arithmatex (generic mode) leaves as \( \) and \[ \], and the
// $...$ / $$...$$ of notebook Markdown cells, with the KaTeX copy shipped in docs/assets/katex
// (no CDN: the site renders offline). Runs again after each instant-navigation page load.
document$.subscribe(({ body }) => {
  renderMathInElement(body, {
    delimiters: [
      { left: "$$", right: "$$", display: true },
      { left: "\\[", right: "\\]", display: true },
      { left: "\\(", right: "\\)", display: false },
      { left: "$", right: "$", display: false },
    ],
    ignoredClasses: ["highlight", "jp-OutputArea"],
    throwOnError: false,
  });
});
