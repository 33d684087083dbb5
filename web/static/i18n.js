// Texts of the pages: Vietnamese first, English by the switch in the header.
// Every text shown to people comes from here; values from the server (titles,
// names) are inserted as text nodes, never as HTML.

const TEXTS = {
  vi: {
    brand: 'Hội nghị truyền hình trực tuyến',
    brand_join: 'Tham gia hội nghị',
    brand_chair: 'Bảng điều khiển chủ tọa',
    switch_lang: 'English',
    logout: 'Đăng xuất',
    noscript: 'Trang này cần JavaScript.',
    loading: 'Đang tải…',
    role_admin: 'Quản trị hệ thống',
    role_booker: 'Cán bộ đặt lịch',
    role_it: 'Cán bộ kỹ thuật',
    role_operator: 'Người vận hành',

    login_title: 'Đăng nhập',
    login_intro: 'Dùng tài khoản người vận hành điểm cầu do Văn phòng cấp.',
    login_intro_chair: 'Dùng tài khoản người vận hành điểm cầu chủ trì, hoặc tài khoản cán bộ đặt lịch, quản trị hệ thống.',
    username: 'Tên đăng nhập',
    password: 'Mật khẩu',
    login_button: 'Đăng nhập',
    login_wrong: 'Sai tên đăng nhập hoặc mật khẩu.',
    login_limited: 'Đăng nhập sai quá nhiều lần. Vui lòng thử lại sau {seconds} giây.',
    login_failed: 'Không đăng nhập được: {message}',

    no_endpoint: 'Tài khoản này không gắn với điểm cầu nào. Trang tham gia dành cho người vận hành điểm cầu.',
    your_endpoint: 'Điểm cầu',
    no_conference: 'Hiện chưa có hội nghị nào của điểm cầu. Trang sẽ tự cập nhật khi có lịch mới.',
    conference: 'Hội nghị',
    next_conference: 'Hội nghị sắp tới',
    current_conference: 'Hội nghị hiện tại',
    chair: 'Chủ trì',
    participants: '{count} điểm cầu tham dự',
    agenda: 'Nội dung',
    room_opens: 'Phòng họp mở lúc {time}',
    status_scheduled: 'Sắp diễn ra',
    status_open: 'Phòng họp đã mở',
    status_live: 'Đang diễn ra',
    status_ended: 'Đã kết thúc',
    status_cancelled: 'Đã hủy',
    join: 'Tham gia',
    join_hint: 'Bấm một lần: trang sẽ kết nối hình ảnh và âm thanh của điểm cầu.',
    join_hint_wait: 'Bấm trước cũng được: trang sẽ chờ và tự vào khi phòng họp mở.',

    check_title: 'Kiểm tra camera và micro',
    camera: 'Camera',
    microphone: 'Micro',
    mic_level: 'Mức âm thanh micro',
    mic_hint: 'Hãy nói thử: thanh mức âm thanh phải chuyển động.',
    retry: 'Thử lại',
    media_denied: 'Trình duyệt đã chặn quyền dùng camera và micro. Hãy bấm biểu tượng camera trên thanh địa chỉ, chọn “Cho phép”, rồi bấm “Thử lại”.',
    media_none: 'Không tìm thấy camera hoặc micro. Hãy kiểm tra dây cắm thiết bị rồi bấm “Thử lại”.',
    media_no_camera: 'Không tìm thấy camera: điểm cầu vẫn tham gia được, nhưng các nơi khác sẽ không thấy hình.',
    media_no_mic: 'Không tìm thấy micro: điểm cầu vẫn tham gia được, nhưng các nơi khác sẽ không nghe thấy.',
    media_busy: 'Camera hoặc micro đang được chương trình khác sử dụng. Hãy đóng chương trình đó rồi bấm “Thử lại”.',
    media_insecure: 'Trình duyệt chỉ cho dùng camera và micro trên kết nối an toàn (HTTPS). Hãy báo bộ phận kỹ thuật.',
    media_other: 'Không mở được camera hoặc micro ({name}).',
    media_receive_only: 'Điểm cầu sẽ tham gia chỉ để xem và nghe.',

    waiting_title: 'Đang chờ phòng họp mở',
    waiting_text: 'Hội nghị chưa bắt đầu. Phòng họp mở lúc {time}; trang sẽ tự vào hội nghị, không cần tải lại.',
    cancel_wait: 'Thôi chờ',
    connecting: 'Đang kết nối…',
    reconnecting: 'Đang kết nối lại…',
    reconnected: 'Đã kết nối lại.',
    connected: 'Đã kết nối',

    slot_chair: 'Chủ tọa',
    slot_floor: 'Đang phát biểu',
    slot_speaker: 'Đang nói',
    nobody_floor: 'Chưa có điểm cầu nào phát biểu',
    you_have_floor: 'Điểm cầu của bạn đang phát biểu',
    no_video: 'Chưa có hình',
    self_view: 'Điểm cầu của bạn',

    mute: 'Tắt micro',
    unmute: 'Bật micro',
    muted_by_chair: 'Chủ tọa đã tắt micro của điểm cầu',
    ask_floor: 'Xin phát biểu',
    ask_again: 'Xin phát biểu lại',
    cancel_request: 'Hủy xin phát biểu',
    release_floor: 'Kết thúc phát biểu',
    floor_idle: 'Bấm “Xin phát biểu” khi điểm cầu muốn phát biểu.',
    floor_waiting: 'Đang chờ chủ tọa cho phát biểu (thứ tự {position})',
    floor_granted: 'Chủ tọa đã cho phát biểu',
    floor_refused: 'Chủ tọa chưa cho phát biểu',
    leave: 'Rời hội nghị',
    left_text: 'Điểm cầu đã rời hội nghị.',
    join_again: 'Tham gia lại',
    ended_text: 'Hội nghị đã kết thúc.',
    cancelled_text: 'Hội nghị đã bị hủy.',
    removed_text: 'Chủ tọa đã mời điểm cầu ra khỏi hội nghị.',
    replaced_text: 'Điểm cầu này vừa kết nối từ một máy khác, nên trang này đã dừng.',
    refused_join: 'Không vào được phòng họp: {reason}',
    locked_text: 'Phòng họp đang khóa: chủ tọa không nhận thêm điểm cầu.',
    recording: 'Đang ghi hình',
    moderators_chip: 'Cùng điều hành: {names}',

    quality: 'Chất lượng kết nối',
    quality_good: 'Tốt',
    quality_fair: 'Trung bình',
    quality_poor: 'Kém',
    quality_none: 'Chưa đo',
    rtt: 'Độ trễ',
    loss: 'Mất gói',
    bitrate: 'Băng thông',

    // Chair console.
    console_not_chair: 'Bảng điều khiển này dành cho người vận hành điểm cầu chủ trì ({chair}) và cán bộ đặt lịch, quản trị hệ thống.',
    console_no_conference: 'Không tìm thấy hội nghị số {id}, hoặc tài khoản không được xem hội nghị này.',
    console_waiting: 'Phòng họp chưa mở. Phòng mở lúc {time}; bảng điều khiển sẽ tự kết nối.',
    console_takeover: 'Điểm cầu chủ trì đang kết nối từ một thiết bị khác. Điều hành tại đây sẽ thay thế kết nối đó (hình và tiếng của chủ tọa sẽ lấy từ máy này).',
    console_start: 'Điều hành tại đây',
    console_takeover_control: 'Hoặc chỉ điều hành từ máy này: điểm cầu chủ trì giữ nguyên kết nối, máy này không gửi hình, tiếng.',
    console_control_only: 'Chỉ điều hành (không gửi hình, tiếng)',
    control_note: 'Bạn đang điều hành hội nghị (không gửi hình, tiếng)',
    control_note_detail: 'Máy này không gửi camera, micro và không phát âm thanh hội nghị. Hình ảnh các điểm cầu chỉ để theo dõi; các thao tác được ghi nhật ký với tên tài khoản của bạn.',
    chair_site: 'Hình ảnh từ điểm cầu chủ trì',
    rollcall: 'Điểm danh',
    rollcall_count: '{connected}/{total} điểm cầu',
    mute_all: 'Tắt micro tất cả',
    unmute_all: 'Bật micro tất cả',
    lock: 'Khóa phòng',
    unlock: 'Mở khóa phòng',
    room_locked: 'Phòng đã khóa',
    chair_mic_on: 'Micro chủ tọa: bật',
    chair_mic_off: 'Micro chủ tọa: tắt',
    stop_console: 'Dừng điều hành',
    main_video: 'Hình ảnh chính',
    floor_holder: 'Đang phát biểu',
    nobody: 'Không có',
    take_back: 'Thu hồi quyền phát biểu',
    queue: 'Hàng chờ phát biểu',
    queue_empty: 'Chưa có điểm cầu nào xin phát biểu.',
    grant: 'Cho phát biểu',
    refuse: 'Từ chối',
    remove: 'Mời ra',
    remove_confirm: 'Mời {name} ra khỏi hội nghị? Điểm cầu sẽ không vào lại được trong cuộc họp này.',
    cancel: 'Hủy',
    state_connected: 'Đã kết nối',
    state_waiting: 'Đang chờ',
    state_absent: 'Vắng mặt',
    state_dropped: 'Mất kết nối',
    state_removed: 'Đã mời ra',
    badge_muted: 'Đã tắt micro',
    badge_asking: 'Xin phát biểu',
    badge_floor: 'Đang phát biểu',
    badge_refused: 'Đã từ chối',
    chair_you: 'Máy này: camera và micro của chủ tọa',
    mute_site: 'Tắt micro',
    unmute_site: 'Bật micro',
    console_stopped: 'Đã dừng điều hành tại máy này.',
    roll_all_in: 'Tất cả điểm cầu đã vào phòng họp.',
    roll_pending: 'chưa mời',
    roll_invited: 'đang mời',
    roll_no_answer: 'không trả lời',
    roll_declined: 'báo vắng',
    roll_dropped: 'mất kết nối',
    roll_absent: 'vắng mặt',
    roll_left: 'đã rời',
    roll_redialling: 'đang gọi lại',
    // Why a SIP room system's call failed (docs/sip.md); shown instead of its state.
    roll_busy: 'máy bận',
    roll_unreachable: 'không liên lạc được',
    roll_rejected: 'cuộc gọi bị từ chối',
    roll_no_common_codec: 'không có codec chung',

    err_not_chair: 'Chỉ chủ tọa mới làm được việc này.',
    err_not_present: 'Điểm cầu chưa kết nối.',
    err_not_requested: 'Điểm cầu không còn xin phát biểu.',
    err_locked: 'Phòng họp đang khóa.',
    err_removed: 'Điểm cầu đã bị mời ra.',
    err_already_holder: 'Điểm cầu đang giữ quyền phát biểu.',
    err_is_chair: 'Thao tác không áp dụng cho chủ tọa.',
    err_unknown_site: 'Điểm cầu không thuộc hội nghị.',
    err_not_site: 'Bảng điều khiển không phải một điểm cầu: không xin phát biểu được.',
    err_other: 'Thao tác không thực hiện được ({code}).',
    err_network: 'Mất kết nối tới máy chủ. Đang thử lại…',
  },
  en: {
    brand: 'Video-conference network',
    brand_join: 'Join a conference',
    brand_chair: 'Chair console',
    switch_lang: 'Tiếng Việt',
    logout: 'Log out',
    noscript: 'This page needs JavaScript.',
    loading: 'Loading…',
    role_admin: 'Administrator',
    role_booker: 'Booker',
    role_it: 'IT staff',
    role_operator: 'Operator',

    login_title: 'Log in',
    login_intro: 'Use the endpoint operator account issued by the Office.',
    login_intro_chair: 'Use the chair endpoint’s operator account, or a booker or administrator account.',
    username: 'User name',
    password: 'Password',
    login_button: 'Log in',
    login_wrong: 'Wrong user name or password.',
    login_limited: 'Too many failed logins. Please try again in {seconds} seconds.',
    login_failed: 'Could not log in: {message}',

    no_endpoint: 'This account is not bound to an endpoint. The join page is for endpoint operators.',
    your_endpoint: 'Endpoint',
    no_conference: 'No conference is planned for this endpoint. The page updates itself when one is booked.',
    conference: 'Conference',
    next_conference: 'Next conference',
    current_conference: 'Current conference',
    chair: 'Chair',
    participants: '{count} endpoints taking part',
    agenda: 'Agenda',
    room_opens: 'The room opens at {time}',
    status_scheduled: 'Scheduled',
    status_open: 'Room open',
    status_live: 'In progress',
    status_ended: 'Ended',
    status_cancelled: 'Cancelled',
    join: 'Join',
    join_hint: 'One click: the page connects the endpoint’s picture and sound.',
    join_hint_wait: 'You may click early: the page waits and joins when the room opens.',

    check_title: 'Camera and microphone check',
    camera: 'Camera',
    microphone: 'Microphone',
    mic_level: 'Microphone level',
    mic_hint: 'Say something: the level bar should move.',
    retry: 'Try again',
    media_denied: 'The browser blocked the camera and microphone. Click the camera icon in the address bar, choose “Allow”, then click “Try again”.',
    media_none: 'No camera or microphone found. Check the device cables, then click “Try again”.',
    media_no_camera: 'No camera found: the endpoint can still join, but nobody will see it.',
    media_no_mic: 'No microphone found: the endpoint can still join, but nobody will hear it.',
    media_busy: 'The camera or microphone is used by another program. Close it, then click “Try again”.',
    media_insecure: 'The browser allows the camera and microphone only over a secure connection (HTTPS). Please tell the technical staff.',
    media_other: 'Could not open the camera or microphone ({name}).',
    media_receive_only: 'The endpoint will join to watch and listen only.',

    waiting_title: 'Waiting for the room to open',
    waiting_text: 'The conference has not started. The room opens at {time}; the page will join by itself, no reload needed.',
    cancel_wait: 'Stop waiting',
    connecting: 'Connecting…',
    reconnecting: 'Reconnecting…',
    reconnected: 'Connected again.',
    connected: 'Connected',

    slot_chair: 'Chair',
    slot_floor: 'Has the floor',
    slot_speaker: 'Speaking',
    nobody_floor: 'No endpoint has the floor',
    you_have_floor: 'Your endpoint has the floor',
    no_video: 'No picture yet',
    self_view: 'Your endpoint',

    mute: 'Mute',
    unmute: 'Unmute',
    muted_by_chair: 'The chair muted this endpoint',
    ask_floor: 'Ask for the floor',
    ask_again: 'Ask again',
    cancel_request: 'Withdraw request',
    release_floor: 'Give the floor back',
    floor_idle: 'Click “Ask for the floor” when the endpoint wants to speak.',
    floor_waiting: 'Waiting for the chair to give the floor (position {position})',
    floor_granted: 'The chair gave the floor',
    floor_refused: 'The chair refused the request',
    leave: 'Leave',
    left_text: 'The endpoint left the conference.',
    join_again: 'Join again',
    ended_text: 'The conference has ended.',
    cancelled_text: 'The conference was cancelled.',
    removed_text: 'The chair removed this endpoint from the conference.',
    replaced_text: 'This endpoint just connected from another computer, so this page stopped.',
    refused_join: 'Could not enter the room: {reason}',
    locked_text: 'The room is locked: the chair admits no more endpoints.',
    recording: 'Recording',
    moderators_chip: 'Also moderating: {names}',

    quality: 'Connection quality',
    quality_good: 'Good',
    quality_fair: 'Fair',
    quality_poor: 'Poor',
    quality_none: 'Not measured',
    rtt: 'Round trip',
    loss: 'Loss',
    bitrate: 'Bit rate',

    console_not_chair: 'This console is for the operator of the chair endpoint ({chair}) and for bookers and administrators.',
    console_no_conference: 'Conference {id} was not found, or this account may not see it.',
    console_waiting: 'The room is not open yet. It opens at {time}; the console connects by itself.',
    console_takeover: 'The chair endpoint is connected from another device. Running the meeting here replaces that connection (the chair’s picture and sound will come from this computer).',
    console_start: 'Run the meeting here',
    console_takeover_control: 'Or only run the meeting from this computer: the chair endpoint keeps its connection, and this computer sends no picture or sound.',
    console_control_only: 'Run the meeting only (no picture or sound)',
    control_note: 'You are running the meeting (no picture or sound sent)',
    control_note_detail: 'This computer sends no camera or microphone and plays no conference sound. The pictures are for following the sites; every action is logged under your account’s name.',
    chair_site: 'Picture from the chair endpoint',
    rollcall: 'Roll call',
    rollcall_count: '{connected}/{total} endpoints',
    mute_all: 'Mute all',
    unmute_all: 'Unmute all',
    lock: 'Lock the room',
    unlock: 'Unlock the room',
    room_locked: 'Room locked',
    chair_mic_on: 'Chair microphone: on',
    chair_mic_off: 'Chair microphone: off',
    stop_console: 'Stop',
    main_video: 'Main picture',
    floor_holder: 'Has the floor',
    nobody: 'Nobody',
    take_back: 'Take the floor back',
    queue: 'Floor queue',
    queue_empty: 'No endpoint is asking for the floor.',
    grant: 'Give the floor',
    refuse: 'Refuse',
    remove: 'Remove',
    remove_confirm: 'Remove {name} from the conference? It cannot come back in this meeting.',
    cancel: 'Cancel',
    state_connected: 'Connected',
    state_waiting: 'Waiting',
    state_absent: 'Absent',
    state_dropped: 'Connection lost',
    state_removed: 'Removed',
    badge_muted: 'Muted',
    badge_asking: 'Asking',
    badge_floor: 'Has the floor',
    badge_refused: 'Refused',
    chair_you: 'This computer: the chair’s camera and microphone',
    mute_site: 'Mute',
    unmute_site: 'Unmute',
    console_stopped: 'The console stopped on this computer.',
    roll_all_in: 'Every endpoint is in the room.',
    roll_pending: 'not invited yet',
    roll_invited: 'invited',
    roll_no_answer: 'no answer',
    roll_declined: 'declined',
    roll_dropped: 'connection lost',
    roll_absent: 'absent',
    roll_left: 'left',
    roll_redialling: 'calling again',
    roll_busy: 'busy',
    roll_unreachable: 'unreachable',
    roll_rejected: 'call rejected',
    roll_no_common_codec: 'no common codec',

    err_not_chair: 'Only the chair can do this.',
    err_not_present: 'The endpoint is not connected.',
    err_not_requested: 'The endpoint is no longer asking for the floor.',
    err_locked: 'The room is locked.',
    err_removed: 'The endpoint was removed.',
    err_already_holder: 'The endpoint already has the floor.',
    err_is_chair: 'This does not apply to the chair.',
    err_unknown_site: 'The endpoint is not part of this conference.',
    err_not_site: 'The console is not an endpoint: it cannot ask for the floor.',
    err_other: 'The action failed ({code}).',
    err_network: 'Lost the connection to the server. Retrying…',
  },
};

const STORAGE_KEY = 'vcbridge.lang';
const listeners = [];
let current = 'vi';
try {
  current = localStorage.getItem(STORAGE_KEY) === 'en' ? 'en' : 'vi';
} catch {
  current = 'vi';
}

/**
 * Add a page's own texts ({vi: {...}, en: {...}}), so each page keeps its words in
 * its own module (`texts/<page>.js`) instead of in this file. A key already
 * defined is an error: two pages must not silently change each other's words.
 */
export function addTexts(texts) {
  for (const language of ['vi', 'en']) {
    for (const [key, value] of Object.entries(texts[language] || {})) {
      if (key in TEXTS[language]) throw new Error(`text ${key} defined twice`);
      TEXTS[language][key] = value;
    }
  }
}

/** The text for `key` in the current language, with `{name}` filled from `params`. */
export function t(key, params = {}) {
  const text = TEXTS[current][key] ?? TEXTS.vi[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (match, name) => (name in params ? String(params[name]) : match));
}

export function lang() {
  return current;
}

export function setLang(value) {
  current = value === 'en' ? 'en' : 'vi';
  try {
    localStorage.setItem(STORAGE_KEY, current);
  } catch {
    // private mode: the choice lasts for this page only
  }
  applyStatic();
  for (const listener of listeners) listener();
}

/** Call `listener` after every language change (pages re-render their dynamic parts). */
export function onLangChange(listener) {
  listeners.push(listener);
}

/** Fill the elements that carry `data-i18n` (text) or `data-i18n-title` (tooltip). */
export function applyStatic(root = document) {
  document.documentElement.lang = current;
  for (const node of root.querySelectorAll('[data-i18n]')) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll('[data-i18n-title]')) node.title = t(node.dataset.i18nTitle);
  for (const node of root.querySelectorAll('[data-i18n-label]')) {
    node.setAttribute('aria-label', t(node.dataset.i18nLabel));
  }
}

/** The message for a refused control action (`error.code` of the signaling protocol). */
export function errorText(error) {
  const key = `err_${error && error.code}`;
  return key in TEXTS.vi ? t(key) : t('err_other', { code: (error && error.code) || '?' });
}

// The roll call's word for an endpoint: its state, or for a SIP room system whose call
// failed, why (busy, unreachable, rejected, no common codec: the API's `reason`).
const SIP_FAILURES = new Set(['busy', 'unreachable', 'rejected', 'no_common_codec']);
export function rollWord(entry) {
  return SIP_FAILURES.has(entry.reason) ? entry.reason : entry.state;
}
