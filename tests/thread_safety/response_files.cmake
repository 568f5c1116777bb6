# cmake -P script for check.sh: writes into OUT_DIR one clang response file per
# translation unit of common/, store/, mapper/, http/ and plugin/ in COMPILE_COMMANDS,
# holding the unit's include paths, definitions and language standard and
# the unit itself. Everything else in the command (gcc's warning options,
# -o, -c) is left out.
cmake_minimum_required(VERSION 3.25)

foreach(_var COMPILE_COMMANDS SOURCE_DIR OUT_DIR)
  if(NOT DEFINED ${_var})
    message(FATAL_ERROR "response_files.cmake: -D${_var}=... is required")
  endif()
endforeach()

file(READ "${COMPILE_COMMANDS}" _json)
string(JSON _count LENGTH "${_json}")
file(REMOVE_RECURSE "${OUT_DIR}")
file(MAKE_DIRECTORY "${OUT_DIR}")
if(_count EQUAL 0)
  return()
endif()

# Options whose value is the next argument, and options kept as one argument.
set(_with_value -isystem -iquote -idirafter -include)
set(_single_re "^-(I|D|U|std=|isystem|iquote|idirafter|pthread$)")

math(EXPR _last "${_count} - 1")
foreach(_i RANGE ${_last})
  string(JSON _file GET "${_json}" ${_i} file)
  file(RELATIVE_PATH _rel "${SOURCE_DIR}" "${_file}")
  if(NOT _rel MATCHES "^(common|store|mapper|http|admin|plugin|cmd)/[^/]+\\.cc$")
    continue()
  endif()
  string(JSON _command GET "${_json}" ${_i} command)
  separate_arguments(_args UNIX_COMMAND "${_command}")
  set(_kept "")
  set(_take_next FALSE)
  foreach(_arg IN LISTS _args)
    if(_take_next)
      list(APPEND _kept "${_arg}")
      set(_take_next FALSE)
    elseif(_arg IN_LIST _with_value)
      list(APPEND _kept "${_arg}")
      set(_take_next TRUE)
    elseif(_arg MATCHES "${_single_re}")
      list(APPEND _kept "${_arg}")
    endif()
  endforeach()
  list(APPEND _kept "${_file}")
  # Response files are split at whitespace; quote each argument.
  set(_text "")
  foreach(_arg IN LISTS _kept)
    string(REPLACE "\\" "\\\\" _arg "${_arg}")
    string(REPLACE "\"" "\\\"" _arg "${_arg}")
    string(APPEND _text "\"${_arg}\"\n")
  endforeach()
  string(REPLACE "/" "_" _name "${_rel}")
  file(WRITE "${OUT_DIR}/${_name}.rsp" "${_text}")
endforeach()
