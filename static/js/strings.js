// Strings the user reads come from the server-rendered page, where they are
// translated with the rest of it: a JSON data block (not executed, so the
// strict CSP allows it).

/** The page's strings by name; {} if the block is missing or broken. */
export function pageStrings(doc, id = "strings") {
  try {
    const value = JSON.parse(doc.getElementById(id)?.textContent ?? "{}");
    return value !== null && typeof value === "object" ? value : {};
  } catch {
    return {};
  }
}
