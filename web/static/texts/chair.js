// The chair console's words for its grid of sites (filters and pages): Vietnamese
// first, English second. Its other words are in i18n.js.

import { addTexts } from '../i18n.js';

addTexts({
  vi: {
    chair_filter_label: 'Lọc các điểm cầu',
    chair_filter_all: 'Tất cả',
    chair_filter_asking: 'Xin phát biểu',
    chair_filter_connected: 'Đã kết nối',
    chair_filter_missing: 'Chưa vào',
    chair_filter_muted: 'Đã tắt micro',
    chair_page: 'Trang {page}/{pages}',
    chair_page_prev: 'Trang trước',
    chair_page_next: 'Trang sau',
  },
  en: {
    chair_filter_label: 'Filter the endpoints',
    chair_filter_all: 'All',
    chair_filter_asking: 'Asking',
    chair_filter_connected: 'Connected',
    chair_filter_missing: 'Not in',
    chair_filter_muted: 'Muted',
    chair_page: 'Page {page}/{pages}',
    chair_page_prev: 'Previous page',
    chair_page_next: 'Next page',
  },
});
