// The words of the site's header and navigation (common.js, site_nav.js) and of
// the home page (/): Vietnamese first, English second.

import { addTexts } from '../i18n.js';

addTexts({
  vi: {
    nav_label: 'Các trang',
    nav_menu: 'Menu',
    nav_menu_open: 'Mở menu các trang',
    nav_menu_close: 'Đóng menu các trang',
    nav_calendar: 'Lịch họp',
    nav_operator: 'Điểm cầu',
    nav_join: 'Tham gia họp',
    nav_dashboard: 'Giám sát',
    nav_documents: 'Tài liệu',
    nav_admin: 'Quản trị',
    nav_home_link: 'Về trang chính',

    home_sub: 'Trang chính',
    home_login_intro: 'Dùng tài khoản do Văn phòng UBND tỉnh cấp: cán bộ đặt lịch, người vận hành điểm cầu, cán bộ kỹ thuật hoặc quản trị hệ thống.',
    home_going: 'Đang mở trang {page}…',
    home_no_page: 'Tài khoản này không dùng được trang nào của hệ thống. Vui lòng liên hệ quản trị hệ thống.',
  },
  en: {
    nav_label: 'Pages',
    nav_menu: 'Menu',
    nav_menu_open: 'Open the page menu',
    nav_menu_close: 'Close the page menu',
    nav_calendar: 'Calendar',
    nav_operator: 'My endpoint',
    nav_join: 'Join',
    nav_dashboard: 'Dashboard',
    nav_documents: 'Documents',
    nav_admin: 'Administration',
    nav_home_link: 'Go to the home page',

    home_sub: 'Home',
    home_login_intro: 'Use the account issued by the Provincial People’s Committee Office: booker, endpoint operator, IT staff or administrator.',
    home_going: 'Opening {page}…',
    home_no_page: 'This account cannot use any page of the system. Please contact the administrator.',
  },
});
