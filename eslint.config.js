// ESLint's recommended rules for the page's scripts (`make check`): plain ES
// modules in the browser, the service worker, and their unit tests under Node.
import js from "@eslint/js";
import globals from "globals";

// templates/sw.js is a Jinja template: each {{ ... }} (a JSON value, by
// `tojson`) is linted as `null`, padded so columns still match the file.
const jinja = {
  preprocess: (text) => [text.replace(/\{\{.*?\}\}/g, (tag) => "null".padEnd(tag.length))],
  postprocess: (messages) => messages.flat(),
};

export default [
  { ignores: ["node_modules/", ".venv/", ".venv-test/"] },
  js.configs.recommended,
  {
    files: ["static/**/*.js"],
    languageOptions: { sourceType: "module", globals: globals.browser },
  },
  {
    // A classic worker script, rendered by Jinja: {{ ... }} only inside string literals.
    files: ["templates/sw.js"],
    processor: jinja,
    languageOptions: { sourceType: "script", globals: globals.serviceworker },
  },
  {
    files: ["tests/js/**/*.{js,mjs}", "bench/**/*.mjs", "eslint.config.js"],
    languageOptions: { sourceType: "module", globals: globals.node },
  },
];
