// What the page's script needs from the server-rendered page: its language,
// 12/24 h and every string the user reads, translated with the rest of the
// page. One JSON data block, #page-data (not executed, so the strict CSP
// allows it), for every module: main.js hands the strings on to kiosk.js and
// offline.js.

/** {lang, hours, flexibleDayPeriods, countdown, strings}; English, 24 h and no strings if the block is missing or broken. */
export function pageData(doc, id = "page-data") {
  let value = null;
  try {
    value = JSON.parse(doc.getElementById(id)?.textContent ?? "null");
  } catch {
    value = null;
  }
  const data = value !== null && typeof value === "object" ? value : {};
  const given = data.strings !== null && typeof data.strings === "object" ? data.strings : {};
  // Units ({unit: {plural category: form}}, units.js) travel with the strings.
  const units = data.units !== null && typeof data.units === "object" ? data.units : {};
  const strings = { ...given, units };
  return {
    lang: typeof data.lang === "string" && data.lang ? data.lang : doc.documentElement.lang || "en",
    hours: data.hours === 12 ? 12 : 24,
    flexibleDayPeriods: data.flexibleDayPeriods === true,
    // ?until=: {targetMs, moment} as the server validated it, or null.
    countdown: data.countdown !== null && typeof data.countdown === "object" ? data.countdown : null,
    strings,
  };
}

/**
 * A translated template with its %(name)s / %(name)d placeholders filled
 * (the catalogues' python-format, so `pybabel` checks the translations keep them).
 */
export function fill(template, values) {
  return template.replace(/%\((\w+)\)[sd]/g, (whole, name) =>
    name in values ? String(values[name]) : whole);
}
