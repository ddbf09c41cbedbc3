// Numbers with units in the page's language: the number by Intl ("1.5",
// "1,5"), the unit's plural form by Intl.PluralRules from the server's
// catalogue ({one: "%(value)s day", other: "%(value)s days"}), so Russian
// gets «1 день», «2 дня», «5 дней». Pure: imports under Node for its tests.

import { fill } from "./strings.js";

const pluralRules = new Map();
const numberFormats = new Map();

function cached(map, key, make) {
  if (!map.has(key)) map.set(key, make());
  return map.get(key);
}

/** "3 h", "1,25 с": value with `digits` decimals (trailing zeros dropped when trim). */
export function unitText(units, name, value, lang, { digits = 0, trim = false } = {}) {
  const options = {
    minimumFractionDigits: trim ? 0 : digits,
    maximumFractionDigits: digits,
    useGrouping: false,
  };
  const key = `${lang}|${options.minimumFractionDigits}|${digits}`;
  const number = cached(numberFormats, key, () => new Intl.NumberFormat(lang, options));
  const rules = cached(pluralRules, key, () => new Intl.PluralRules(lang, options));
  const forms = units?.[name] ?? {};
  const template = forms[rules.select(value)] ?? forms.other ?? `%(value)s ${name}`;
  return fill(template, { value: number.format(value) });
}

/** "2 h 30 min", "3 h", "45 min": whole minutes as hours and minutes. */
export function hoursMinutesText(units, totalMinutes, lang) {
  const minutes = Math.abs(Math.round(totalMinutes));
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  if (h === 0) return unitText(units, "min", m, lang);
  if (m === 0) return unitText(units, "h", h, lang);
  return `${unitText(units, "h", h, lang)} ${unitText(units, "min", m, lang)}`;
}

/**
 * A device clock's error for the accuracy line: "4.2 ms", "1.25 s", "37 s",
 * "12 min", "1 h", "2 h 5 min" (an hour is "1 h", never "60 min").
 */
export function durationText(units, ms, lang) {
  const abs = Math.abs(ms);
  if (abs < 10) return unitText(units, "ms", abs, lang, { digits: 1 });
  if (abs < 1000) return unitText(units, "ms", Math.round(abs), lang);
  const s = abs / 1000;
  if (s < 10) return unitText(units, "s", s, lang, { digits: 2 });
  if (s < 59.5) return unitText(units, "s", Math.round(s), lang);
  return hoursMinutesText(units, s / 60, lang);
}
