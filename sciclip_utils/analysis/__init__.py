"""Dataset analysis (issue 18): Table 1 and caption statistics (``captions``), figure types
(``figure_types``), the chapter's figures (``plots``) and the stage that runs them all (``stage``,
``sciclip analyze``)."""
