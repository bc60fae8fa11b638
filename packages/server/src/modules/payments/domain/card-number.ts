/*
 * Card numbers never reach Baton: the provider holds them, Baton keeps its tokens. A client that
 * sends a card number where a token belongs is refused before anything stores or logs it. A card
 * number here is 12 to 19 digits, spaces or dashes allowed between them, that pass the Luhn
 * check (ISO/IEC 7812), as every issued card number does.
 */

const CARD_LIKE = /^\d(?:[ -]?\d){11,18}$/;

/** Whether `text` is, by its form, a payment card number. */
export function looksLikeCardNumber(text: string): boolean {
  const trimmed = text.trim();
  if (!CARD_LIKE.test(trimmed)) return false;
  const digits = trimmed.replaceAll(/[ -]/g, '');
  let sum = 0;
  for (let index = 0; index < digits.length; index++) {
    let digit = Number(digits[digits.length - 1 - index]);
    if (index % 2 === 1) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
  }
  return sum % 10 === 0;
}
