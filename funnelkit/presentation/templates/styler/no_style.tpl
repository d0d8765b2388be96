{#- No <style> element: the report page allows only its own stylesheet (Content-Security-Policy);
    cells carry classes that report.css styles. -#}
